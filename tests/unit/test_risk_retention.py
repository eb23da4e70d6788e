"""A decided risk fan-in is removed after the orders' retention in event time, with its
payment outcomes, so the risk stage's store stays bounded."""

from __future__ import annotations

from pathlib import Path

from streams import topics
from streams.codecs import default_catalog
from streams.domain.orders.inputs import OrderEvent
from streams.metrics import Metrics
from streams.rule_files import load_rules
from streams.runtime.context import Context, Record
from streams.runtime.store import PartitionStore, encode_value
from streams.stages import DEFAULT_RISK_RULES, risk
from tests.builders import DIRECTORY, order_event, payment_event

DAY_MS = 24 * 60 * 60 * 1000
T0 = 1_795_000_000_000


class RiskPartition:
    def __init__(self, tmp_path: Path) -> None:
        self.stage = risk.risk_stage(default_catalog(), load_rules(DEFAULT_RISK_RULES),
                                     Metrics(), retention_ms=DAY_MS, partitions=1)
        self.stores = {spec.name: PartitionStore(tmp_path / spec.name, None, spec.name)
                       for spec in self.stage.stores}
        self.decisions = 0

    def _run(self, topic: str, call: object) -> None:
        ctx = Context(Record(topic, 0, 0, None, None, 0, []), default_catalog(), Metrics(),
                      self.stores, {name: {} for name in self.stores}, directory=DIRECTORY)
        call(ctx)  # type: ignore[operator]
        for name, layer in ctx.layers.items():
            self.stores[name].write((key.encode(), encode_value(value))
                                    for key, value in layer.items())
            self.stores[name].committed(layer)
        self.decisions += sum(send.topic == topics.RISK_DECISIONS for send in ctx.sends)

    def feed(self, topic: str, item: object) -> None:
        self._run(topic, lambda ctx: self.stage.handle(ctx, item))

    def tick(self, advance_ms: int) -> None:
        assert self.stage.on_tick is not None
        self._run(topics.ORDERS, lambda ctx: self.stage.on_tick(ctx, advance_ms))

    def fan_in_keys(self) -> set[str]:
        return {key.decode() for key, _ in self.stores[risk.FAN_IN.name].raw_items()
                if not key.startswith(b"~")}


def test_a_decided_fan_in_and_its_outcomes_are_removed_after_the_retention(
    tmp_path: Path
) -> None:
    partition = RiskPartition(tmp_path)
    partition.feed(topics.ORDERS, OrderEvent.from_record(order_event("o-1", at=T0)))
    # No answers come back (the clock, run on answers, is still at 0): a tick brings event
    # time past the fan-in's deadline, so it times out and decides.
    partition.tick(T0 + 600_000)
    assert partition.decisions == 1
    partition.feed(topics.PAYMENTS, payment_event("o-1", at=T0 + 500))
    assert {key.split("|")[0] for key in partition.fan_in_keys()} == {"o-1"}
    assert len(partition.fan_in_keys()) == 2  # the fan-in and its counted payment outcome

    partition.tick(DAY_MS - 120_000)
    assert "o-1" in partition.fan_in_keys()
    partition.tick(2 * 60 * 60 * 1000)
    assert partition.fan_in_keys() == set()
