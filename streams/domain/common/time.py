"""Event time as the domain sees it: milliseconds, and the tick that moves it on."""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60 * 1000


@dataclass(frozen=True, slots=True)
class Tick:
    """Event time moved on; lets a held orphan payment time out with no other input."""

    now_ms: int
