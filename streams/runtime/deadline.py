"""Client calls with a deadline that holds, whatever librdkafka does.

Some transactional calls ignore their own timeout (librdkafka #5456: after a broker
outage `send_offsets_to_transaction` hung for minutes). Each call runs on a helper thread
while the worker waits for it with a watchdog: when the deadline passes, the worker gives
up on the client (it is never used again) instead of hanging with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ClientUnusable(Exception):
    """The producer (and with it the consumer's assignment) must be dropped and re-created."""


class Stopping(Exception):
    """The worker was asked to stop while it waited for a client call."""


class Watchdog:
    def __init__(self, timeout_s: float, stopping: threading.Event) -> None:
        self.timeout_s = timeout_s
        self.stopping = stopping
        self._lock = threading.Lock()
        self._inflight: tuple[str, float] | None = None

    def run(self, name: str, call: Callable[[], T], timeout_s: float | None = None,
            stoppable: bool = True) -> T:
        """`call()`'s result or exception; ClientUnusable when it outlives the deadline,
        Stopping when a stop is requested meanwhile (and `stoppable`)."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        outcome: dict[str, object] = {}
        done = threading.Event()

        def target() -> None:
            try:
                outcome["value"] = call()
            except BaseException as exc:  # handed to the waiting thread
                outcome["error"] = exc
            finally:
                done.set()

        started = time.monotonic()
        with self._lock:
            self._inflight = (name, started)
        try:
            threading.Thread(target=target, name=f"client-{name}", daemon=True).start()
            while not done.wait(0.1):
                if stoppable and self.stopping.is_set():
                    raise Stopping(name)
                if time.monotonic() - started > limit:
                    raise ClientUnusable(f"{name} did not return within {limit:g}s")
        finally:
            with self._lock:
                self._inflight = None
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["value"]  # type: ignore[return-value]

    def overdue(self) -> tuple[str, float] | None:
        """(call, seconds running) when a call has outlived its deadline, for /health."""
        with self._lock:
            inflight = self._inflight
        if inflight is None:
            return None
        name, started = inflight
        running = time.monotonic() - started
        return (name, running) if running > self.timeout_s else None
