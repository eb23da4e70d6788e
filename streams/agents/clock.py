"""Event time per partition: a watermark that never goes back, and keys waiting for it.

A stage keyed by something (an order, a batch, a provider) must act when event time
passes a deadline even if no record for that key arrives. Each partition keeps one
clock in its store: the largest event time it has seen, and per key the time it wants
to be woken at. Replaying the partition replays the same wake-ups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streams.domain.order_inputs import Tick

if TYPE_CHECKING:
    from streams.runtime.context import Table

# Runs one input (or a Tick) against a key's state at event time `now`; returns when the
# key wants to be woken next, or None.
Step = Callable[[str, Any, int], "int | None"]


@dataclass
class PartitionClock:
    watermark: int = 0
    wakes: dict[str, int] = field(default_factory=dict)
    # No wake is earlier than this: most records then pass without a scan of `wakes`.
    next_due: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PartitionClock:
        if not data:
            return cls()
        return cls(watermark=data["watermark"], wakes=dict(data["wakes"]),
                   next_due=data.get("next_due"))

    def to_dict(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "wakes": self.wakes, "next_due": self.next_due}

    def advance(self, event_time: int) -> None:
        self.watermark = max(self.watermark, event_time)

    def wake(self, key: str, at: int | None) -> None:
        if at is None:
            self.wakes.pop(key, None)
            return
        self.wakes[key] = at
        if self.next_due is None or at < self.next_due:
            self.next_due = at

    def due(self) -> list[str]:
        """Keys whose wake-up time event time has reached, in a replayable order."""
        if self.next_due is None or self.next_due > self.watermark:
            return []
        self.next_due = min(self.wakes.values(), default=None)
        return sorted(key for key, at in self.wakes.items() if at <= self.watermark)


def clock_key(partition: int) -> str:
    # Keys of the domain never start with '~', so the clock cannot collide with one.
    return f"~clock-p{partition}"


def step_in_event_time(
    table: Table, partition: int, key: str, event: Any, at: int, run: Step
) -> None:
    """Run `event` for `key` at its event time `at`, then every key event time has woken."""
    clock_id = clock_key(partition)
    clock = PartitionClock.from_dict(table.get(clock_id))
    clock.advance(at)
    clock.wake(key, run(key, event, at))
    for due in clock.due():
        clock.wake(due, run(due, Tick(clock.watermark), clock.watermark))
    table[clock_id] = clock.to_dict()
