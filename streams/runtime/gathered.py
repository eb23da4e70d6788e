"""Items for a partition of an internal topic, gathered over a batch into few records.

A stage that fans out many small items (risk's observations, velocity's answers) would
otherwise send a record per item group it handles: each record costs a produce, a fetch,
a decode and a handler call downstream, more than the items in it. Gathered items are
sent when the batch's records are all handled, one record per topic partition (split
only to stay well within the topic's size limit), in the order they were gathered. A
record whose handler failed gathers nothing, as it sends nothing.

The downstream handler sees one record with the items of several inputs. It must handle
each item on its own (as it would in a record of its own), and not read anything from
the record beyond its items: its key is the first item's, its headers are kept only
when every item had the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.runtime.context import Headers, Send, SizeLimits, wire_size

# Items per record at most: a failed handler dead-letters the whole record, so a bound
# keeps what one bad item costs its neighbours small, at no cost in records under load.
MAX_ITEMS_PER_RECORD = 256


@dataclass(frozen=True)
class Gathered:
    """Items to send to `partition` of `topic`, with the key they would have been sent
    with alone (it hashes to `partition`), and the topic's codec for a group of items."""

    topic: str
    partition: int
    key: bytes
    items: tuple[Any, ...]
    encode: Callable[[tuple[Any, ...]], bytes]
    headers: Headers | None = None


@dataclass
class _Group:
    encode: Callable[[tuple[Any, ...]], bytes]
    headers: Headers | None
    mixed_headers: bool = False
    # The key each item would have been sent with: a split record keeps its first one's.
    keys: list[bytes] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)


class Gatherer:
    """A batch's gathered items, by topic and partition."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, int], _Group] = {}

    def add(self, gathered: Iterable[Gathered]) -> None:
        for one in gathered:
            group = self._groups.get((one.topic, one.partition))
            if group is None:
                group = self._groups[(one.topic, one.partition)] = _Group(one.encode,
                                                                          one.headers)
            elif one.headers != group.headers:
                group.mixed_headers = True
            group.keys += [one.key] * len(one.items)
            group.items += one.items

    def sends(self, limits: SizeLimits) -> list[Send]:
        """The gathered items as records, emptying the gatherer."""
        sends: list[Send] = []
        for (topic, partition), group in self._groups.items():
            headers = None if group.mixed_headers else group.headers
            for start in range(0, len(group.items), MAX_ITEMS_PER_RECORD):
                end = min(start + MAX_ITEMS_PER_RECORD, len(group.items))
                sends += _fitted(topic, partition, group, start, end, headers, limits.of(topic))
        self._groups.clear()
        return sends


def _fitted(topic: str, partition: int, group: _Group, start: int, end: int,
            headers: Headers | None, limit: int) -> list[Send]:
    """Items [start, end) in one record, or halved until each record fits `limit`. An item
    too large on its own is sent alone: it is refused, the runtime isolates the batch
    (a gathered record names no cause) and dead-letters the record that caused it."""
    send = Send(topic, group.keys[start], group.encode(tuple(group.items[start:end])), headers,
                partition=partition)
    if end - start == 1 or wire_size(send) <= limit:
        return [send]
    middle = (start + end) // 2
    return (_fitted(topic, partition, group, start, middle, headers, limit)
            + _fitted(topic, partition, group, middle, end, headers, limit))
