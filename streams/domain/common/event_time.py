"""How far ahead of its broker timestamp a record's own event time may be.

A partition's clock never goes back, so one record dated far in the future (2**63 - 1, or
the year 3000) would move event time for good: windows close early, holds expire, and
later records look late. A time more than the allowed skew ahead of the record's broker
timestamp is refused at the edge (SCHEMA_INVALID). Times in the past are allowed by default:
backfills, redeliveries and replays carry them, and they cannot move the clock. A deployment
without backfills can bound them too (TOPUP_MAX_EVENT_AGE_S), so an order back-dated out of
every velocity window is refused rather than counted as late.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_EVENT_SKEW_S = 7 * 24 * 3600


class EventTimeOutOfRange(ValueError):
    pass


def check_event_time(name: str, event_ms: int, broker_ms: int, max_skew_ms: int, *,
                     max_age_ms: int | None = None) -> int:
    if event_ms < 0:
        raise EventTimeOutOfRange(f"{name} {event_ms} is before 1970")
    if broker_ms >= 0 and event_ms > broker_ms + max_skew_ms:
        raise EventTimeOutOfRange(
            f"{name} {event_ms} is more than {max_skew_ms // 1000} s ahead of the record's "
            f"broker timestamp {broker_ms} (TOPUP_MAX_EVENT_SKEW_S)")
    if max_age_ms is not None and broker_ms >= 0 and event_ms < broker_ms - max_age_ms:
        raise EventTimeOutOfRange(
            f"{name} {event_ms} is more than {max_age_ms // 1000} s behind the record's "
            f"broker timestamp {broker_ms} (TOPUP_MAX_EVENT_AGE_S)")
    return event_ms


@dataclass(frozen=True, slots=True)
class EventTimeBounds:
    """How far an event time may be ahead of (and, if set, behind) its reference time."""

    ahead_ms: int = DEFAULT_MAX_EVENT_SKEW_S * 1000
    behind_ms: int | None = None

    @classmethod
    def of_seconds(cls, ahead_s: int, behind_s: int | None) -> EventTimeBounds:
        return cls(ahead_s * 1000, None if behind_s is None else behind_s * 1000)

    def check(self, name: str, event_ms: int, reference_ms: int) -> int:
        return check_event_time(name, event_ms, reference_ms, self.ahead_ms,
                                max_age_ms=self.behind_ms)
