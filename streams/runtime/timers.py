"""Event-time timers: the runtime owns time, a stage only asks to be woken.

A stage keyed by something (an order, a batch, a provider) must act when event time
passes a deadline even if no record for that key arrives. The stage says which of its
stores keeps its timers, how to read an input's event time and what to do for a key
that is due (`TimerSpec`); the runtime advances the partition's event time with each
input and with the idle-partition ticks (streams/runtime/ticks.py), and after each one
hands the stage every key event time has reached. In the handler, `ctx.timers` schedules
(`schedule(key, at)`) and cancels.

Each partition keeps one clock in the store: the largest event time it has seen
(`~clock-p<partition>`), and per key the time it wants to be woken at. Each wake is a key
of its own, ordered by time (`~wake|<at>|<key>`, with `~wake-of|<key>` to find it when it
moves), so a record costs the same with ten or a million keys waiting, and finding what
is due reads only what is due. Timers are data in the store and its changelog, and ticks
are records: a replay of the partition decides what the live run decided.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.runtime.context import Context, Table
    from streams.runtime.stage import Stage

# Keys of the domain never start with '~', so the clock's keys cannot collide with one.
_WAKE = "~wake|"  # ~wake|<at, zero-padded>|<key> -> 1
_WAKE_OF = "~wake-of|"  # ~wake-of|<key> -> at, to find a key's wake when it moves
_WAKE_END = "~wake}"  # just past every _WAKE key ('}' follows '|')

HOUR_MS = 60 * 60 * 1000


def _slot(at: int, key: str) -> str:
    return f"{_WAKE}{at:015d}|{key}"


def clock_key(partition: int) -> str:
    return f"~clock-p{partition}"


def to_the_hour(at: int) -> int:
    """`at` rounded up to a whole hour: for far deadlines (retentions of days), so every
    input touching a key within the hour finds its wake already there and writes nothing."""
    return -(-at // HOUR_MS) * HOUR_MS


class PartitionClock:
    """One partition's clock over a store's table; `save()` writes the head back."""

    def __init__(self, table: Table, partition: int) -> None:
        self._table, self._head = table, clock_key(partition)
        head = table.get(self._head) or {}
        self.watermark: int = head.get("watermark", 0)
        # No wake is earlier than this: most records then pass without a scan.
        self.next_due: int | None = head.get("next_due")
        self._stored = (self.watermark, self.next_due) if head else None

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

    def save_if_moved(self) -> None:
        """`save()`, unless the head is as stored: a record that moves no time and no wake
        writes nothing to the changelog."""
        if self._stored != (self.watermark, self.next_due):
            self.save()


class Timers:
    """What a handler sees of its partition's clock (`ctx.timers`): event time, and its
    keys' wakes. Advancing past them and delivering what is due is the runtime's."""

    def __init__(self, clock: PartitionClock) -> None:
        self._clock = clock

    @property
    def now(self) -> int:
        """The partition's event time: the largest it has seen, never going back."""
        return self._clock.watermark

    def schedule(self, key: str, at: int | None) -> None:
        """Wake `key` once event time reaches `at`, replacing its earlier wake (None:
        cancel it). A key is woken once: `on_due` schedules it again if it still waits."""
        self._clock.wake(key, at)

    def cancel(self, key: str) -> None:
        self._clock.wake(key, None)

    def advance(self, event_time: int) -> None:
        """For a stage whose event time is not its input's (`TimerSpec.event_time`): risk
        runs its fan-in clock on the answers, read from state."""
        self._clock.advance(event_time)


# What a stage does for a key event time has reached: `ctx.timers.now` is that time.
OnDue = Callable[["Context", str], None]


def _no_event_time(_item: Any) -> int | None:
    return None


@dataclass(frozen=True)
class TimerSpec:
    # The stage's store that keeps the clock and the wakes.
    store: str
    on_due: OnDue
    # An input's event time, which the runtime advances the partition to before handling
    # it (None: the input does not move time).
    event_time: Callable[[Any], int | None] = _no_event_time
    # At most this many keys delivered per record or tick, the others at the next: for
    # wakes rounded to the hour, which would otherwise all come due in one transaction.
    due_limit: int | None = None
    # Whether the runtime's idle-partition ticks move this stage's time too.
    idle_ticks: bool = True


def open_timers(ctx: Context, spec: TimerSpec) -> PartitionClock:
    clock = PartitionClock(ctx.table(spec.store), ctx.record.partition)
    ctx.use_timers(Timers(clock))
    return clock


def _deliver_due(ctx: Context, spec: TimerSpec, clock: PartitionClock) -> None:
    for key in clock.due(spec.due_limit):
        spec.on_due(ctx, key)
    clock.save_if_moved()


def run_in_event_time(
    ctx: Context, spec: TimerSpec, handle: Callable[[Context, Any], None], item: Any
) -> None:
    """Advance to the input's event time, handle it, then deliver what is due."""
    clock = open_timers(ctx, spec)
    at = spec.event_time(item)
    if at is not None:
        clock.advance(at)
    handle(ctx, item)
    _deliver_due(ctx, spec, clock)


def tick(ctx: Context, spec: TimerSpec, advance_ms: int) -> None:
    """The runtime's tick for a quiet partition: event time moves on by `advance_ms` from
    where this stage's clock stands, and what it reaches is delivered."""
    clock = open_timers(ctx, spec)
    clock.advance(clock.watermark + advance_ms)
    _deliver_due(ctx, spec, clock)


def with_timers(stage: Stage, spec: TimerSpec) -> Stage:
    """The stage with its handler run in event time, and (unless `spec.idle_ticks` is
    off) a tick handler for the runtime's idle-partition ticks."""
    handle = stage.handle

    def timed(ctx: Context, item: Any) -> None:
        run_in_event_time(ctx, spec, handle, item)

    def on_tick(ctx: Context, advance_ms: int) -> None:
        tick(ctx, spec, advance_ms)

    return replace(stage, handle=timed, on_tick=on_tick if spec.idle_ticks else None,
                   timers=spec)
