"""Deduplication in event time: whether a sighting repeats one already seen.

Decided by event time alone (the time of the first sighting against this one's), never
the wall clock, so a replay decides the same; a sighting older than the window counts as
new. Storage is the caller's: it keeps the first sighting's time per key.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class DedupWindow:
    window_ms: int

    @classmethod
    def of_days(cls, days: int) -> DedupWindow:
        return cls(days * DAY_MS)

    def is_repeat(self, first_seen: int | None, at: int) -> bool:
        """A sighting at `at` repeats one first seen at `first_seen` (None: never) if that
        was at most the window before it."""
        return first_seen is not None and at - first_seen <= self.window_ms
