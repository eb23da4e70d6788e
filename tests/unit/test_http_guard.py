"""The public listener's guard, without a network: header joining and connection bookkeeping."""

from __future__ import annotations

from streams.http_guard import ConnectionGuard, joined_headers


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = self.closed = False

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True


def test_repeated_headers_keep_every_value_in_order() -> None:
    headers = joined_headers([("X-Trace", "a"), ("Content-Type", "json"), ("x-trace", "b")])
    assert headers == {"x-trace": "a, b", "content-type": "json"}


def test_idle_connections_are_cut_after_the_header_timeout_but_not_mid_request() -> None:
    now = [0.0]
    guard = ConnectionGuard(header_timeout_s=2, max_connections=10, clock=lambda: now[0])
    idle, busy = FakeTransport(), FakeTransport()
    guard.opened(idle)  # type: ignore[arg-type]
    guard.opened(busy)  # type: ignore[arg-type]
    guard.request_started(busy)
    now[0] = 3.0
    guard.sweep()
    assert idle.aborted and not busy.aborted
    guard.request_finished(busy)
    now[0] = 4.0
    guard.sweep()
    assert not busy.aborted  # idle for 1 s only
    now[0] = 6.0
    guard.sweep()
    assert busy.aborted


def test_at_the_cap_the_longest_idle_connection_makes_room() -> None:
    now = [0.0]
    guard = ConnectionGuard(header_timeout_s=60, max_connections=2, clock=lambda: now[0])
    first, second, third = FakeTransport(), FakeTransport(), FakeTransport()
    guard.opened(first)  # type: ignore[arg-type]
    now[0] = 1.0
    guard.opened(second)  # type: ignore[arg-type]
    guard.opened(third)  # type: ignore[arg-type]
    assert first.aborted and not second.aborted and not third.closed
    guard.request_started(second)
    guard.request_started(third)
    fourth = FakeTransport()
    guard.opened(fourth)  # type: ignore[arg-type]
    assert fourth.closed  # every slot is serving a request
    assert guard.open_connections == 2
