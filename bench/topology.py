"""Our full topology (intake, orders, balances) in one worker, exactly-once on, timed from
its first consumed record until every order is credited, read off its /metrics."""

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

_SAMPLE = re.compile(r'^(\w+)\{([^}]*)\} (\S+)$')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _counters(port: int) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            samples[(match[1], match[2])] = float(match[3])
    return samples


def run_topology(
    bootstrap: str, orders: int, timeout_s: float = 1800, wrap: list[str] | None = None
) -> float:
    """Seconds from the first consumed record until `orders` credits were published.
    `wrap` prefixes the worker's command line (a profiler)."""
    port = _free_port()
    state = Path(tempfile.mkdtemp(prefix="bench-state-"))
    env = dict(
        os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, TOPUP_APP_ID=f"bench-{uuid.uuid4().hex[:8]}",
        TOPUP_STATE_DIR=str(state), TOPUP_WEB_PORT=str(port), TOPUP_HMAC_SECRETS=SECRET,
        TOPUP_RISK_RULES=str(Path(__file__).with_name("rules-that-never-fire.yaml")),
    )
    log = (state / "worker.log").open("wb")
    command = [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"]
    worker = subprocess.Popen([*(wrap or []), *command], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    started = None
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited; see {state / 'worker.log'}")
            try:
                samples = _counters(port)
            except OSError:
                time.sleep(0.2)
                continue
            consumed = sum(v for (name, _), v in samples.items()
                           if name == "topup_records_consumed_total")
            if started is None and consumed > 0:
                started = time.monotonic()
            credits = samples.get(
                ("topup_records_published_total", 'topic="topup.credits"'), 0.0
            )
            if credits >= orders and started is not None:
                return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"not every order credited in {timeout_s}s; see {state}")
    finally:
        # SIGINT: a wrapping profiler then writes its samples before it exits.
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
