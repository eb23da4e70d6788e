"""The watchdog around client calls: a hung call cannot hang the worker."""

from __future__ import annotations

import threading
import time

import pytest

from streams.runtime.deadline import ClientUnusable, Stopping, Watchdog


def test_a_call_that_returns_in_time_gives_its_result_or_its_error() -> None:
    watchdog = Watchdog(1.0, threading.Event())
    assert watchdog.run("quick", lambda: 42) == 42
    with pytest.raises(ValueError, match="boom"):
        watchdog.run("failing", lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert watchdog.overdue() is None


def test_a_hung_call_is_abandoned_at_its_deadline_and_reported_overdue() -> None:
    watchdog = Watchdog(0.3, threading.Event())
    release = threading.Event()
    seen: list[tuple[str, float] | None] = []

    def observe() -> None:
        time.sleep(0.5)
        seen.append(watchdog.overdue())

    threading.Thread(target=observe).start()
    started = time.monotonic()
    with pytest.raises(ClientUnusable, match="hung did not return"):
        watchdog.run("hung", release.wait, timeout_s=1.0)
    assert time.monotonic() - started < 3.0
    release.set()
    assert seen and seen[0] is not None and seen[0][0] == "hung"
    assert watchdog.overdue() is None


def test_a_stop_request_ends_the_wait_unless_the_call_must_finish() -> None:
    stopping = threading.Event()
    watchdog = Watchdog(30.0, stopping)
    threading.Timer(0.2, stopping.set).start()
    started = time.monotonic()
    with pytest.raises(Stopping):
        watchdog.run("hung", threading.Event().wait)
    assert time.monotonic() - started < 3.0
    with pytest.raises(ClientUnusable):
        watchdog.run("closing", threading.Event().wait, timeout_s=0.3, stoppable=False)
