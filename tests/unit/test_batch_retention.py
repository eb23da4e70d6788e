"""A judged settlement batch is removed after the orders' retention in event time, with a
tombstone; one not judged yet is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams import topics
from streams.codecs import default_catalog
from streams.metrics import Metrics
from streams.runtime.context import Context, Record
from streams.runtime.store import PartitionStore, encode_value
from streams.stages import settlements
from tests.builders import BATCH, DIRECTORY
from tests.builders import BATCH_DECIDE_AT as DECIDE_AT
from tests.builders import BATCH_T0 as T0
from tests.builders import batch_close as close
from tests.builders import batch_line as line

DAY_MS = 24 * 60 * 60 * 1000


class BatchPartition:
    def __init__(self, tmp_path: Path) -> None:
        self.stage = settlements.batches_stage(retention_ms=DAY_MS)
        self.stores = {spec.name: PartitionStore(tmp_path / spec.name, None, spec.name)
                       for spec in self.stage.stores}
        self.tombstones: set[str] = set()

    def _run(self, call: Any) -> None:
        ctx = Context(Record(topics.SETTLEMENT_BATCHES, 0, 0, None, None, 0, []),
                      default_catalog(), Metrics(), self.stores,
                      {name: {} for name in self.stores}, directory=DIRECTORY)
        call(ctx)
        for name, layer in ctx.layers.items():
            self.stores[name].write((key.encode(), encode_value(value))
                                    for key, value in layer.items())
            self.stores[name].committed(layer)
            self.tombstones |= {key for key, value in layer.items() if value is None}

    def feed(self, parsed: Any, at: int) -> None:
        self._run(lambda ctx: self.stage.handle(ctx, {"at": at, "parsed": parsed}))

    def tick(self, advance_ms: int) -> None:
        assert self.stage.on_tick is not None
        self._run(lambda ctx: self.stage.on_tick(ctx, advance_ms))

    def state(self) -> Any:
        return self.stores[settlements.BATCHES.name].get(BATCH)


def test_a_judged_batch_is_removed_after_the_retention(tmp_path: Path) -> None:
    batch = BatchPartition(tmp_path)
    for number in (1, 2, 3):
        batch.feed(line(number), T0)
    batch.feed(close(), T0 + 60_000)
    batch.tick(DECIDE_AT - (T0 + 60_000))
    assert batch.state()["decided"] is True
    batch.tick(DAY_MS - 60_000)
    assert batch.state() is not None
    batch.tick(2 * 60 * 60 * 1000)
    assert batch.state() is None and BATCH in batch.tombstones


def test_a_batch_not_judged_yet_is_kept_whatever_its_age(tmp_path: Path) -> None:
    batch = BatchPartition(tmp_path)
    batch.feed(line(1), T0)  # no close: it is never judged
    batch.tick(10 * DAY_MS)
    assert batch.state() is not None
