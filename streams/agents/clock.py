"""Event time per partition: a watermark that never goes back, and keys waiting for it.

A stage keyed by something (an order, a batch, a provider) must act when event time
passes a deadline even if no record for that key arrives. Each partition keeps one
clock in its store: the largest event time it has seen, and per key the time it wants
to be woken at. Each wake is a key of its own, ordered by time (`~wake|<at>|<key>`), so a
record costs the same with ten or a million keys waiting, and finding what is due reads
only what is due. Replaying the partition replays the same wake-ups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streams.domain.order_inputs import Tick

if TYPE_CHECKING:
    from streams.runtime.context import Table

# Runs one input (or a Tick) against a key's state at event time `now`; returns when the
# key wants to be woken next, or None.
Step = Callable[[str, Any, int], "int | None"]

# Keys of the domain never start with '~', so the clock's keys cannot collide with one.
_WAKE = "~wake|"  # ~wake|<at, zero-padded>|<key> -> 1
_WAKE_OF = "~wake-of|"  # ~wake-of|<key> -> at, to find a key's wake when it moves
_WAKE_END = "~wake}"  # just past every _WAKE key ('}' follows '|')


def _slot(at: int, key: str) -> str:
    return f"{_WAKE}{at:015d}|{key}"


class PartitionClock:
    """One partition's clock over its stage's table; `save()` writes the head back."""

    def __init__(self, table: Table, partition: int) -> None:
        self._table, self._head = table, clock_key(partition)
        head = table.get(self._head) or {}
        self.watermark: int = head.get("watermark", 0)
        # No wake is earlier than this: most records then pass without a scan.
        self.next_due: int | None = head.get("next_due")

    def advance(self, event_time: int) -> None:
        self.watermark = max(self.watermark, event_time)

    def wake(self, key: str, at: int | None) -> None:
        """Wake `key` once event time reaches `at` (None: never), replacing its last wake."""
        table, of = self._table, _WAKE_OF + key
        old = table.get(of)
        if old == at:
            return
        if old is not None:
            del table[_slot(old, key)]
        if at is None:
            del table[of]
            return
        table[_slot(at, key)] = 1
        table[of] = at
        if self.next_due is None or at < self.next_due:
            self.next_due = at

    def due(self, limit: int | None = None) -> list[str]:
        """Keys whose wake-up time event time has reached, oldest wake first; each is
        cleared, so the caller wakes it again if it still waits. With `limit`, at most that
        many: the others stay due for a later call (for wakes rounded to the hour, which
        would otherwise all come due in one record)."""
        if self.next_due is None or self.next_due > self.watermark:
            return []
        # No wake is before next_due: starting there skips the tombstones of past wakes.
        table, first, reached = self._table, _slot(self.next_due, ""), _slot(self.watermark + 1, "")
        keys = []
        for slot, _ in table.scan(first, reached, limit=limit):
            key = slot.split("|", 2)[2]
            del table[slot]
            del table[_WAKE_OF + key]
            keys.append(key)
        later = table.scan(reached if limit is None else first, _WAKE_END, limit=1)
        self.next_due = int(later[0][0].split("|", 2)[1]) if later else None
        return keys

    def save(self) -> None:
        self._table[self._head] = {"watermark": self.watermark, "next_due": self.next_due}


HOUR_MS = 60 * 60 * 1000


def to_the_hour(at: int) -> int:
    """`at` rounded up to a whole hour: for far deadlines (retentions of days), so every
    input touching a key within the hour finds its wake already there and writes nothing."""
    return -(-at // HOUR_MS) * HOUR_MS


def clock_key(partition: int) -> str:
    return f"~clock-p{partition}"


def step_in_event_time(
    table: Table, partition: int, key: str, event: Any, at: int, run: Step
) -> None:
    """Run `event` for `key` at its event time `at`, then every key event time has woken."""
    clock = PartitionClock(table, partition)
    clock.advance(at)
    clock.wake(key, run(key, event, at))
    for due in clock.due():
        clock.wake(due, run(due, Tick(clock.watermark), clock.watermark))
    clock.save()


def tick_in_event_time(table: Table, partition: int, advance_ms: int, run: Step) -> None:
    """The runtime's tick for a quiet partition: move event time on by `advance_ms`, then
    run every key it has woken."""
    clock = PartitionClock(table, partition)
    clock.advance(clock.watermark + advance_ms)
    for due in clock.due():
        clock.wake(due, run(due, Tick(clock.watermark), clock.watermark))
    clock.save()
