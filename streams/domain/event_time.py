"""How far ahead of its broker timestamp a record's own event time may be.

A partition's clock never goes back, so one record dated far in the future (2**63 - 1, or
the year 3000) would move event time for good: windows close early, holds expire, and
later records look late. A time more than the allowed skew ahead of the record's broker
timestamp is refused at the edge (SCHEMA_INVALID). Times in the past are allowed: backfills,
redeliveries and replays carry them, and they cannot move the clock.
"""

from __future__ import annotations

DEFAULT_MAX_EVENT_SKEW_S = 7 * 24 * 3600


class EventTimeOutOfRange(ValueError):
    pass


def check_event_time(name: str, event_ms: int, broker_ms: int, max_skew_ms: int) -> int:
    if event_ms < 0:
        raise EventTimeOutOfRange(f"{name} {event_ms} is before 1970")
    if broker_ms >= 0 and event_ms > broker_ms + max_skew_ms:
        raise EventTimeOutOfRange(
            f"{name} {event_ms} is more than {max_skew_ms // 1000} s ahead of the record's "
            f"broker timestamp {broker_ms} (TOPUP_MAX_EVENT_SKEW_S)")
    return event_ms
