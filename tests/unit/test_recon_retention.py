"""A matched order's reconciliation state is removed after the orders' retention in event
time, with a tombstone; one still waiting for its settlement line is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams import topics
from streams.codecs import default_catalog
from streams.domain.recon.inputs import ReconInput
from streams.metrics import Metrics
from streams.runtime.context import Context, Record
from streams.runtime.store import PartitionStore, encode_value
from streams.stages import reconciliation
from tests.builders import DIRECTORY
from tests.builders import RECON_T0 as T0
from tests.builders import recon_credit as credit
from tests.builders import recon_line as line
from tests.builders import recon_snapshot as snapshot

DAY_MS = 24 * 60 * 60 * 1000


class ReconPartition:
    """The reconciliation stage over real local stores, each input committed on its own."""

    def __init__(self, tmp_path: Path) -> None:
        self.stage = reconciliation.recon_stage(reconciliation.recon_config(1800, 30))
        self.stores = {spec.name: PartitionStore(tmp_path / spec.name, None, spec.name)
                       for spec in self.stage.stores}
        self.tombstones: set[str] = set()

    def _context(self) -> Context:
        record = Record(topics.RECON_INPUTS, 0, 0, None, None, 0, [])
        return Context(record, default_catalog(), Metrics(), self.stores,
                       {name: {} for name in self.stores}, directory=DIRECTORY)

    def feed(self, item: ReconInput, at: int) -> None:
        ctx = self._context()
        self.stage.handle(ctx, reconciliation.Timed(item, at))
        self._commit(ctx)

    def tick(self, advance_ms: int) -> None:
        ctx = self._context()
        assert self.stage.on_tick is not None
        self.stage.on_tick(ctx, advance_ms)
        self._commit(ctx)

    def _commit(self, ctx: Context) -> None:
        for name, layer in ctx.layers.items():
            self.stores[name].write((key.encode(), encode_value(value))
                                    for key, value in layer.items())
            self.stores[name].committed(layer)
            if name == reconciliation.RECON_STATE.name:
                self.tombstones |= {key for key, value in layer.items() if value is None}

    def state(self, order_id: str) -> Any:
        return self.stores[reconciliation.RECON_STATE.name].get(order_id)


def test_a_matched_order_is_removed_after_the_retention_and_a_waiting_one_kept(
    tmp_path: Path
) -> None:
    recon = ReconPartition(tmp_path)
    recon.feed(snapshot(), T0)
    recon.feed(credit(), T0)
    recon.feed(line(), T0 + 60_000)
    recon.feed(snapshot(order_id="ord-waiting"), T0)
    recon.feed(credit(order_id="ord-waiting", txn="txn-w"), T0)

    recon.tick(30 * DAY_MS - 120_000)
    assert recon.state("ord-1") is not None
    recon.tick(DAY_MS)
    assert recon.state("ord-1") is None and "ord-1" in recon.tombstones
    # Its credit has no settlement line yet: still to be checked, so kept whatever its age.
    assert recon.state("ord-waiting") is not None
