"""What the chaos tests share: the crash proof's workload and checks, traffic in the
background, and waits on worker processes. Seed and size come from the environment so
the same scripts run as longer soaks (TOPUP_CHAOS_SEED, TOPUP_CHAOS_ORDERS)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from streams import topics
from streams.config import Settings
from tests.chaos.state_harness import offsets_report
from tests.integration.crash_workload import NEVER_FIRES, assert_exactly_once, crash_workload, feed
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import WorkerProcess, decode_all, http, read_until

ORDERS = int(os.environ.get("TOPUP_CHAOS_ORDERS", "300"))
SEEDS = [int(s) for s in os.environ.get("TOPUP_CHAOS_SEEDS", "3,17").split(",")]


def chaos_env(kafka_env: dict[str, str], session_timeout_s: int = 6, **extra: str) -> dict:
    # No risk rule may hold a credit: the expected ledger is every valid payment.
    return {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS),
            "TOPUP_SESSION_TIMEOUT_S": str(session_timeout_s),
            "TOPUP_RISK_RULES": str(NEVER_FIRES), "TOPUP_TXN_CALL_TIMEOUT_S": "10",
            "TOPUP_STALL_THRESHOLD_S": "8", "TOPUP_SHUTDOWN_TIMEOUT_S": "15",
            "TOPUP_BATCH_MAX_RECORDS": "50", **extra}


class Traffic:
    """The workload, produced in slices in the background while faults happen."""

    def __init__(self, settings: Settings, seed: int, slice_size: int = 30,
                 pause_s: float = 0.3, orders: int = ORDERS,
                 hold_callbacks: bool = False) -> None:
        """`hold_callbacks`: every order first, the payments only after release(), so
        that they need the order states a fault may have lost."""
        order_events, callbacks, self.expected = crash_workload(seed, orders)
        self.released = threading.Event()
        if not hold_callbacks:
            self.released.set()

        self.error: BaseException | None = None

        def run() -> None:
            try:
                produce()
            except BaseException as exc:  # handed to assert_exactly_once
                self.error = exc

        def produce() -> None:
            if hold_callbacks:
                feed(settings, order_events, [], slice_size, pause_s)
                self.released.wait()
                feed(settings, [], callbacks, slice_size, pause_s)
            else:
                feed(settings, order_events, callbacks, slice_size, pause_s)

        self.thread = threading.Thread(target=run, daemon=True)
        self.settings = settings

    def release(self) -> None:
        self.released.set()

    def start(self) -> Traffic:
        self.thread.start()
        return self

    def assert_exactly_once(self, workers: list[WorkerProcess], timeout_s: float) -> float:
        """Waits for every expected credit (read_committed) and checks them; returns the
        seconds it took. A worker exiting meanwhile fails the test."""
        started = time.monotonic()
        self.release()
        self.thread.join(timeout=timeout_s)
        assert self.error is None, f"the traffic itself failed: {self.error!r}"
        records = read_until(
            self.settings, [topics.CREDITS],
            lambda rs: len({c["entry_id"] for c in decode_all(rs, topics.CREDITS)})
            >= len(self.expected),
            timeout_s=timeout_s, workers=workers,
        )
        try:
            assert_exactly_once(decode_all(records, topics.CREDITS), self.expected)
        except AssertionError:
            print("offsets at the failure:\n" + offsets_report(self.settings), flush=True)
            raise
        return time.monotonic() - started


def wait_for(what: str, condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        time.sleep(0.1)


def is_stopped(worker: WorkerProcess) -> bool:
    """SIGSTOPped (state T in /proc)."""
    stat = Path(f"/proc/{worker.process.pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


def health(worker: WorkerProcess) -> int:
    try:
        status, _ = http("GET", f"http://127.0.0.1:{worker.web_port}/health")
    except OSError:
        return 0
    return status


def in_log(worker: WorkerProcess, text: str) -> Callable[[], bool]:
    return lambda: text in worker.log()
