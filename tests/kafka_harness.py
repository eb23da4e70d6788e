"""Test harness around the real broker of deploy/kafka and real worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings, load_settings
from streams.kafka_clients import ConsumedRecord, read_committed

REPO = Path(__file__).resolve().parents[1]
KAFKA_DIR = REPO / "deploy" / "kafka"
TEST_PORT = int(os.environ.get("TOPUP_TEST_KAFKA_PORT", "19092"))


def start_broker() -> str:
    """Start (or reuse) the test broker through deploy/kafka; a failure fails the tests."""
    env = dict(os.environ, TOPUP_KAFKA_PORT=str(TEST_PORT))
    result = subprocess.run(
        [str(KAFKA_DIR / "start")], env=env, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        raise RuntimeError(f"deploy/kafka/start failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    web_port: int  # the operator listener: balances, /metrics, /health
    webhook_port: int = 0  # the public listener: POST /webhooks/{provider}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        """The last lines that say something: money decisions and refused connection
        retries are left out, they drown the rest."""
        noise = ("money decision", "Connection refused", "METADATAUPDATE")
        kept = [line for line in self.log().splitlines()
                if line.strip() and not any(n in line for n in noise)]
        return "\n".join(line[:300] for line in kept[-lines:])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class WorkerFactory:
    def __init__(self, base_env: Mapping[str, str], tmp: Path) -> None:
        self.base_env = dict(base_env)
        self.tmp = tmp
        self.started: list[WorkerProcess] = []

    def start(self, name: str = "w1", **env: str) -> WorkerProcess:
        web_port, webhook_port = free_port(), free_port()
        # Each worker has its own state and port, whatever environment it is given.
        merged = {
            **self.base_env, **env,
            "TOPUP_STATE_DIR": str(self.tmp / f"state-{name}"),
            "TOPUP_WEB_PORT": str(web_port),
            "TOPUP_WEBHOOK_HOST": "127.0.0.1",
            "TOPUP_WEBHOOK_PORT": str(webhook_port),
        }
        log_path = self.tmp / f"worker-{name}-{len(self.started)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                env=merged, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            )
        worker = WorkerProcess(process, log_path, web_port, webhook_port)
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


def settings_from(env: Mapping[str, str]) -> Settings:
    return load_settings(env)


def read_until(
    settings: Settings,
    topic_names: list[str],
    done: Callable[[list[ConsumedRecord]], bool],
    timeout_s: float = 90.0,
    workers: Sequence[WorkerProcess] = (),
) -> list[ConsumedRecord]:
    """Poll the topics (read_committed) until `done` holds or the deadline passes.
    A worker that dies meanwhile fails the wait at once, with its log."""
    deadline = time.monotonic() + timeout_s
    records: list[ConsumedRecord] = []
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.process.poll() is not None:
                code = worker.process.returncode
                raise AssertionError(f"worker exited ({code}):\n{worker.log()}")
        records = read_committed(
            settings, topic_names, until=min(deadline, time.monotonic() + 10), idle_s=1.0
        )
        if done(records):
            return records
    return records


def decode_all(records: list[ConsumedRecord], topic: str) -> list[dict]:
    record_name = topics.BY_NAME[topic].record
    catalog = default_catalog()
    return [catalog.decode(record_name, r.value) for r in records if r.topic == topic]


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """(status, body bytes) of one request; HTTP error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for_http(worker: WorkerProcess, path: str = "/health", timeout_s: float = 60) -> None:
    """Poll the worker's web server until it answers 200 (fail with its log otherwise)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited:\n{worker.log()}")
        try:
            status, _ = http("GET", f"http://127.0.0.1:{worker.web_port}{path}")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"worker web server did not answer within {timeout_s}s:\n{worker.log()}")


@dataclass
class DedicatedBroker:
    """A second real broker of its own, for tests that stop it."""

    env: dict[str, str]
    bootstrap: str

    def stop(self) -> None:
        subprocess.run([str(KAFKA_DIR / "reset")], env=self.env, check=True, timeout=120,
                       capture_output=True)


def start_dedicated_broker(data_dir: Path, **extra: str) -> DedicatedBroker:
    """`extra`: more deploy/kafka settings, e.g. TOPUP_KAFKA_SASL=1."""
    env = dict(
        os.environ,
        TOPUP_KAFKA_PORT=str(free_port()),
        TOPUP_KAFKA_CONTROLLER_PORT=str(free_port()),
        TOPUP_KAFKA_DATA_DIR=str(data_dir),
        TOPUP_KAFKA_HEAP="512m",
        **extra,
    )
    result = subprocess.run(
        [str(KAFKA_DIR / "start")], env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"deploy/kafka/start failed:\n{result.stderr}")
    return DedicatedBroker(env, result.stdout.strip().splitlines()[-1])

