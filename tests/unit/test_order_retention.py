"""Ended orders are removed after their retention in event time, with a tombstone, and what
comes for a removed order later never credits it again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.domain.common.payments import PaymentEvent
from streams.domain.orders.inputs import OrderEvent
from streams.metrics import Metrics
from streams.runtime.context import Context, Record, Send
from streams.runtime.store import PartitionStore, encode_value
from streams.stages import orders
from tests.builders import DIRECTORY, order_event, payment_event

DAY_MS = orders.DAY_MS
T0 = 1_795_000_000_000


class OrderPartition:
    """The order stage over real local stores, each record committed on its own."""

    def __init__(self, tmp_path: Path, days: int = 30) -> None:
        settings = Settings(order_retention_days=days, require_risk_verdict=False,
                            hmac_secrets=("s",))
        self.stage = orders.stage(settings, default_catalog())
        self.stores = {spec.name: PartitionStore(tmp_path / spec.name, None, spec.name)
                       for spec in self.stage.stores}
        self.sends: list[Send] = []
        self.tombstones: set[str] = set()
        self.offset = 0

    def feed(self, item: OrderEvent | PaymentEvent, event_time: int) -> None:
        self.offset += 1
        topic = topics.ORDERS if isinstance(item, OrderEvent) else topics.PAYMENTS
        record = Record(topic, 0, self.offset, item.order_id.encode(), b"", event_time, [])
        ctx = Context(record, default_catalog(), Metrics(), self.stores,
                      {name: {} for name in self.stores}, directory=DIRECTORY)
        self.stage.handle(ctx, orders.Decoded(item, event_time))
        self._commit(ctx)

    def tick(self, advance_ms: int) -> None:
        record = Record(topics.ORDERS, 0, self.offset, None, None, 0, [])
        ctx = Context(record, default_catalog(), Metrics(), self.stores,
                      {name: {} for name in self.stores}, directory=DIRECTORY)
        assert self.stage.on_tick is not None
        self.stage.on_tick(ctx, advance_ms)
        self._commit(ctx)

    def _commit(self, ctx: Context) -> None:
        for name, layer in ctx.layers.items():
            self.stores[name].write((key.encode(), encode_value(value))
                                    for key, value in layer.items())
            self.stores[name].committed(layer)
            self.tombstones |= {key for key, value in layer.items()
                                if value is None and name == orders.ORDER_STATE.name}
        self.sends += ctx.sends

    def state(self, order_id: str) -> Any:
        return self.stores[orders.ORDER_STATE.name].get(order_id)

    def outputs(self, topic: str, record: str) -> list[dict[str, Any]]:
        catalog = default_catalog()
        return [catalog.decode(record, send.value) for send in self.sends
                if send.topic == topic and send.value is not None]

    def credits(self) -> list[str]:
        return [entry["entry_id"] for entry in self.outputs(topics.CREDITS, "LedgerEntry")
                if entry["op"] == "CREDIT"]


def credited_order(partition: OrderPartition, order_id: str, at: int) -> None:
    partition.feed(OrderEvent.from_record(order_event(order_id, at=at)), at)
    partition.feed(payment_event(order_id, at=at + 500), at + 1_000)


def test_an_ended_order_is_removed_after_its_retention_with_a_tombstone(tmp_path: Path) -> None:
    partition = OrderPartition(tmp_path)
    credited_order(partition, "o-old", T0)
    assert partition.credits() and partition.state("o-old")["status"] == "CREDITED"
    # A CREATED order never paid is not ended: it is kept whatever its age.
    partition.feed(OrderEvent.from_record(order_event("o-open", at=T0)), T0)

    partition.tick(30 * DAY_MS - 2_000)
    assert partition.state("o-old") is not None
    partition.tick(DAY_MS)
    assert partition.state("o-old") is None
    assert "o-old" in partition.tombstones
    assert partition.state("o-open") is not None


def test_input_touching_an_ended_order_restarts_its_retention(tmp_path: Path) -> None:
    partition = OrderPartition(tmp_path)
    credited_order(partition, "o-1", T0)
    touched = T0 + 20 * DAY_MS
    # A duplicate callback (a new delivery id, so intake let it through) touches the order.
    partition.feed(payment_event("o-1", at=T0 + 500), touched)
    partition.tick(15 * DAY_MS)
    assert partition.state("o-1") is not None
    partition.tick(20 * DAY_MS)
    assert partition.state("o-1") is None


def test_a_late_duplicate_for_a_removed_order_never_credits_again(tmp_path: Path) -> None:
    partition = OrderPartition(tmp_path)
    credited_order(partition, "o-gone", T0)
    [credit] = partition.credits()
    partition.tick(31 * DAY_MS)
    assert partition.state("o-gone") is None

    # The order service replays the order: dated before the horizon, it is refused whole.
    partition.feed(OrderEvent.from_record(order_event("o-gone", at=T0)), T0)
    [dead] = partition.outputs(topics.DLQ, "DeadLetter")
    assert "retention horizon" in dead["error"]
    # The provider redelivers the payment: intake dates it now, so it finds no order and
    # is held as an orphan, then alerted, never credited.
    now = T0 + 31 * DAY_MS + 1_000
    partition.feed(payment_event("o-gone", at=T0 + 500), now)
    partition.tick(DAY_MS)
    assert partition.credits() == [credit]
    assert partition.state("o-gone").get("status") is None
    alerts = partition.outputs(topics.ALERTS, "Alert")
    assert [a["kind"] for a in alerts if a.get("order_id") == "o-gone"] == ["ORPHAN_PAYMENT"]
