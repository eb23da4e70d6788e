"""Time that moves on a quiet partition: the runtime's ticks, written as data.

Timers run on each partition's event time, which moves only with input. When a partition
has had no input for `idle_advance_s` of wall-clock time, the runtime writes a tick to the
same partition of `topup.internal.ticks` (co-partitioned with the inputs); the stages with
timers consume it, advance their clocks and fire what is due. The tick carries how far to
advance: the wall-clock time elapsed since the partition's last input or last tick, so
over a quiet spell each stage's event time moves as far as the wall clock did, starting
from the last event time that stage saw (extrapolated, never jumped to wall-clock time:
a backlog whose event times lag the wall clock is never judged early, since a partition
with a backlog is not idle). Because the tick is a record, a replay reads the same ticks
and decides what the live run decided; a handler never reads the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from streams import wire
from streams.codecs import DecodeError
from streams.runtime.context import Record, Send
from streams.runtime.own_topics import TICKS

DEFAULT_IDLE_ADVANCE_S = 5


def tick_value(advance_ms: int) -> bytes:
    return wire.dumps({"advance_ms": advance_ms})


def decode_tick(record: Record) -> int:
    try:
        advance = int(wire.loads(record.value or b"")["advance_ms"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DecodeError("BAD_PAYLOAD", f"tick refused: {exc}") from None
    if advance < 0:
        raise DecodeError("BAD_PAYLOAD", f"tick refused: advance_ms {advance} < 0")
    return advance


class IdleTicker:
    """Per owned partition, when it last had input or a tick (monotonic wall clock)."""

    def __init__(self, idle_advance_s: float, now: Callable[[], float] = time.monotonic):
        self._idle_s, self._now = idle_advance_s, now
        self._last: dict[int, float] = {}

    def assigned(self, partitions: Iterable[int]) -> None:
        # A partition starts counting when it is ours: until then nothing has elapsed here.
        now = self._now()
        for partition in partitions:
            self._last.setdefault(partition, now)

    def revoked(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._last.pop(partition, None)

    def seen(self, partition: int) -> None:
        """Input arrived on the partition (not a tick)."""
        if partition in self._last:
            self._last[partition] = self._now()

    def due(self) -> list[Send]:
        """A tick for each partition idle for `idle_advance_s`, advancing by the time
        elapsed since its last input or tick."""
        now, sends = self._now(), []
        for partition, last in self._last.items():
            elapsed = now - last
            if elapsed >= self._idle_s:
                self._last[partition] = now
                sends.append(Send(TICKS, None, tick_value(int(elapsed * 1000)),
                                  partition=partition))
        return sends
