"""The per-partition event-time clock: wakes fire once event time reaches them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.runtime.context import Table
from streams.runtime.store import PartitionStore, encode_value
from streams.runtime.timers import PartitionClock


class Committed:
    """A partition store and the writes one record makes, committed between records as
    the worker does (the clock must read back what it stored)."""

    def __init__(self, path: Path) -> None:
        self.store = PartitionStore(path, None, "test-changelog")

    def table(self, pending: dict[str, Any] | None = None) -> tuple[Table, dict[str, Any]]:
        layer: dict[str, Any] = {}
        return Table(self.store, (layer, pending if pending is not None else {})), layer

    def commit(self, layer: dict[str, Any]) -> None:
        self.store.write((key.encode(), encode_value(value)) for key, value in layer.items())


def test_a_wake_fires_when_event_time_reaches_it_and_not_before(tmp_path: Path) -> None:
    table, _ = Committed(tmp_path / "s").table()
    clock = PartitionClock(table, 0)
    clock.wake("a", 100)
    clock.advance(99)
    assert clock.due() == []
    clock.advance(100)
    assert clock.due() == ["a"]
    assert clock.due() == []  # fired once, until woken again


def test_a_later_wake_replaces_the_earlier_one(tmp_path: Path) -> None:
    table, _ = Committed(tmp_path / "s").table()
    clock = PartitionClock(table, 0)
    clock.wake("a", 10)
    clock.wake("a", 30)
    clock.advance(20)
    assert clock.due() == []
    clock.advance(30)
    assert clock.due() == ["a"]


moves = st.lists(st.tuples(st.sampled_from("abcde"), st.one_of(st.none(), st.integers(0, 50)),
                           st.integers(0, 50), st.booleans()), max_size=40)


@settings(max_examples=60, deadline=None)
@given(moves=moves)
def test_due_is_exactly_the_wakes_event_time_has_reached(tmp_path_factory, moves) -> None:
    committed = Committed(tmp_path_factory.mktemp("clock") / "s")
    pending: dict[str, Any] = {}  # earlier records of an uncommitted batch
    wakes: dict[str, int] = {}  # the model
    watermark = 0
    for key, at, advance_to, end_of_batch in moves:
        table, layer = committed.table(pending)
        clock = PartitionClock(table, 3)
        clock.wake(key, at)
        if at is None:
            wakes.pop(key, None)
        else:
            wakes[key] = at
        clock.advance(advance_to)
        watermark = max(watermark, advance_to)
        expected = sorted((t, k) for k, t in wakes.items() if t <= watermark)
        assert clock.due() == [k for _, k in expected]
        for _, k in expected:
            del wakes[k]
        clock.save()
        pending.update(layer)
        if end_of_batch:
            committed.commit(pending)
            pending = {}
