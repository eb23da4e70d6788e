"""A stage: the topics it consumes, the state it keeps, and how it handles one record."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streams.runtime.context import Context, Record
from streams.runtime.store import StoreSpec

if TYPE_CHECKING:
    from streams.runtime.timers import TimerSpec

# The key a keyed input's record joins by (streams.runtime.repartition).
KeyOf = Callable[[Record], "bytes | None"]


@dataclass(frozen=True)
class Stage:
    name: str
    # Co-partitioned: a record on partition p of any of them sees partition p of the stores.
    topics: tuple[str, ...]
    stores: tuple[StoreSpec, ...]
    # Raises streams.codecs.DecodeError for input that must go to the DLQ.
    decode: Callable[[Record], Any]
    handle: Callable[[Context, Any], None]
    # Inputs this stage joins by key, with how to find the key: the runtime moves a record
    # that is on the wrong partition for its key to the right one before any stage sees it.
    keyed: Mapping[str, KeyOf] = field(default_factory=dict)
    # The runtime's tick for a partition without input (advance event time by this many
    # ms and deliver what is due): set with `timers` by streams.runtime.timers.with_timers.
    on_tick: Callable[[Context, int], None] | None = None
    # Every topic the stage's handler may send to: the topology is read from these, and
    # Context refuses a send elsewhere. The runtime's own writes are implicit: dead letters
    # (any stage), repartitioned inputs, ticks and store changelogs.
    outputs: tuple[str, ...] = ()
    # The stage's event-time timers (streams.runtime.timers), when it has any.
    timers: TimerSpec | None = None
