"""One TopUp Guard worker as a subprocess of a benchmark: its own app id, state dir, web
port and log, the bench's HMAC secret, and rules that never fire (so every order is
credited and the measure does not depend on rule outcomes)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from bench.workload import SECRET

RULES = Path(__file__).with_name("rules-that-never-fire.yaml")
_SAMPLE = re.compile(r'^(\w+)(?:\{([^}]*)\})? (\S+)$')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BenchWorker:
    def __init__(self, bootstrap: str, app_id: str | None = None, state_dir: Path | None = None,
                 wrap: list[str] | None = None, env: dict[str, str] | None = None,
                 loglevel: str = os.environ.get("TOPUP_BENCH_LOGLEVEL", "warning")) -> None:
        """`wrap` prefixes the command line (a profiler); `env` adds settings."""
        self.app_id = app_id or f"bench-{uuid.uuid4().hex[:8]}"
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="bench-state-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir.with_name(self.state_dir.name + ".log")
        self.port = free_port()
        env = dict(
            os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, TOPUP_APP_ID=self.app_id,
            TOPUP_STATE_DIR=str(self.state_dir), TOPUP_WEB_PORT=str(self.port),
            TOPUP_WEBHOOK_HOST="127.0.0.1", TOPUP_WEBHOOK_PORT=str(free_port()),
            TOPUP_HMAC_SECRETS=SECRET, TOPUP_RISK_RULES=str(RULES), **(env or {}),
        )
        command = [sys.executable, "-m", "streams.cli", "worker", "--loglevel", loglevel]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen([*(wrap or []), *command], env=env, stdout=log,
                                            stderr=subprocess.STDOUT)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited ({self.process.returncode}); see {self.log_path}")

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as reply:
            return reply.read().decode()

    def ready(self) -> bool:
        """/health answers 200 once the worker's partitions are assigned and restored."""
        try:
            self._get("/health")
            return True
        except OSError:  # not listening yet, or 503 while starting
            return False

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready in {timeout_s}s; see {self.log_path}")
            time.sleep(0.1)

    def metrics(self) -> dict[tuple[str, str], float]:
        """Every sample of /metrics, by (name, labels); empty while the server is not up."""
        try:
            text = self._get("/metrics")
        except OSError:
            return {}
        samples = {}
        for line in text.splitlines():
            if match := _SAMPLE.match(line):
                samples[(match[1], match[2] or "")] = float(match[3])
        return samples

    def consumed(self, samples: dict[tuple[str, str], float] | None = None) -> dict[str, float]:
        """Records consumed so far, by topic label (from `samples`, or read now)."""
        samples = self.metrics() if samples is None else samples
        return {labels: value for (name, labels), value in samples.items()
                if name == "topup_records_consumed_total"}

    def memory_mib(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MiB, read from /proc."""
        fields = memory_mib(self.process.pid)
        return fields["VmRSS"], fields["VmHWM"]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> None:
        """SIGTERM, as a supervisor or a deploy stops a worker."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def stop(self) -> None:
        # SIGINT: a wrapping profiler then writes its samples before it exits.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def memory_mib(pid: int | str = "self") -> dict[str, float]:
    """A process's VmRSS and VmHWM in MiB, read from /proc."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(rest.split()[0]) / 1024  # kB
    return fields
