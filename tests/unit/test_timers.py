"""The runtime's timers: a stage schedules, the runtime advances event time with input and
ticks, and delivers what is due, in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streams import topics
from streams.codecs import default_catalog
from streams.metrics import Metrics
from streams.runtime.context import Context, Record
from streams.runtime.stage import Stage
from streams.runtime.store import PartitionStore, StoreSpec, encode_value
from streams.runtime.timers import TimerSpec, clock_key, with_timers
from tests.builders import DIRECTORY

STORE = StoreSpec("timed")


class Partition:
    """A timed stage over a real local store, each record committed on its own."""

    def __init__(self, tmp_path: Path, **spec: Any) -> None:
        self.store = PartitionStore(tmp_path / "s", None, "timed-changelog")
        self.due: list[tuple[str, int]] = []
        self.layers: list[dict[str, Any]] = []

        def handle(ctx: Context, item: tuple[str, int, int | None]) -> None:
            key, _, wake = item
            ctx.timers.schedule(key, wake)

        def on_due(ctx: Context, key: str) -> None:
            self.due.append((key, ctx.timers.now))

        self.stage = with_timers(
            Stage("timed", ("in",), (STORE,), lambda r: r, handle),
            TimerSpec(STORE.name, on_due, event_time=lambda item: item[1], **spec))

    def _ctx(self) -> Context:
        record = Record(topics.TICKS, 1, 0, None, None, 0, [])
        return Context(record, default_catalog(), Metrics(), {STORE.name: self.store},
                       {STORE.name: {}}, directory=DIRECTORY)

    def _commit(self, ctx: Context) -> None:
        layer = ctx.layers.get(STORE.name, {})
        self.layers.append(layer)
        self.store.write((key.encode(), encode_value(value)) for key, value in layer.items())

    def feed(self, key: str, at: int, wake: int | None) -> None:
        ctx = self._ctx()
        self.stage.handle(ctx, (key, at, wake))
        self._commit(ctx)

    def tick(self, advance_ms: int) -> None:
        ctx = self._ctx()
        assert self.stage.on_tick is not None
        self.stage.on_tick(ctx, advance_ms)
        self._commit(ctx)


def test_what_input_and_ticks_reach_is_delivered_at_that_event_time(tmp_path: Path) -> None:
    partition = Partition(tmp_path)
    partition.feed("a", 100, 150)
    partition.feed("b", 120, 130)
    assert partition.due == []
    partition.feed("c", 140, None)  # event time 140: b is due, a is not
    assert partition.due == [("b", 140)]
    partition.tick(5)
    assert partition.due == [("b", 140)]
    partition.tick(5)  # 150: a, from where event time stood, not from the wall clock
    assert partition.due == [("b", 140), ("a", 150)]


def test_a_later_schedule_replaces_the_wake_and_none_cancels_it(tmp_path: Path) -> None:
    partition = Partition(tmp_path)
    partition.feed("a", 0, 10)
    partition.feed("a", 0, 30)
    partition.feed("b", 0, 20)
    partition.feed("b", 0, None)
    partition.tick(25)
    assert partition.due == []
    partition.tick(5)
    assert partition.due == [("a", 30)]


def test_event_time_never_goes_back(tmp_path: Path) -> None:
    partition = Partition(tmp_path)
    partition.feed("a", 100, 100)
    partition.feed("b", 50, 90)  # behind: judged at the partition's event time, 100
    assert partition.due == [("a", 100), ("b", 100)]


def test_due_limit_leaves_the_rest_for_the_next_record(tmp_path: Path) -> None:
    partition = Partition(tmp_path, due_limit=2)
    for key in "abcde":
        partition.feed(key, 0, 10)
    partition.feed("x", 10, None)
    assert [key for key, _ in partition.due] == ["a", "b"]
    partition.feed("x", 10, None)
    partition.feed("x", 10, None)
    assert [key for key, _ in partition.due] == ["a", "b", "c", "d", "e"]


def test_the_timers_are_the_stores_keys_in_the_layout_the_stages_kept(tmp_path: Path) -> None:
    partition = Partition(tmp_path)
    partition.feed("o-1", 7, 42)
    assert partition.layers[-1] == {
        "~wake|000000000000042|o-1": 1, "~wake-of|o-1": 42,
        clock_key(1): {"watermark": 7, "next_due": 42}}


def test_a_record_that_moves_no_time_and_no_wake_writes_nothing(tmp_path: Path) -> None:
    partition = Partition(tmp_path)
    partition.feed("a", 100, 200)
    partition.feed("a", 90, 200)
    assert partition.layers[-1] == {}


def test_a_stage_without_idle_ticks_gets_none(tmp_path: Path) -> None:
    assert Partition(tmp_path, idle_ticks=False).stage.on_tick is None


def test_a_stage_without_timers_is_told_so(tmp_path: Path) -> None:
    ctx = Partition(tmp_path)._ctx()
    with pytest.raises(RuntimeError, match="no timers"):
        ctx.timers.schedule("a", 1)
