"""A day of generated traffic with injected faults through the real topology: every fault
is exactly one break of its category, and clean orders give none.

The day and its faults are the ones the pure simulation in
tests/unit/test_recon_population.py checks; here they go through Kafka and the workers.
What the ledger did is produced first (orders, then payments, then refunds), then the
provider's settlement files, then the callbacks that come back late, each phase
processed before the next: stages join topics as they come, and the phases keep causes
before their effects across topics, as event time does in the simulation.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter, defaultdict
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from streams import topics
from streams.admin import admin_client
from streams.codecs import default_catalog
from streams.domain.common.ids import entry_id
from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.domain.orders.inputs import OrderEvent, OrderEventType, RiskVerdict
from streams.internal_records import VerifiedPayment
from streams.kafka_clients import producer
from tests.integration.intake_fixtures import provider_secrets
from tests.kafka_harness import decode_all, read_until, settings_from
from tests.recon_population import (
    EXPECTED,
    SEED,
    Order,
    generate,
    order_inputs,
    provider_lines,
    settlement_files,
)

# Risk verdicts have no input topic yet; the orders that need one stay in the simulation.
NEEDS_RISK = "paid_while_blocked"


class Producer:
    """Produces records and remembers the last offset it wrote to each partition."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.catalog = default_catalog()
        self.out = producer(settings)
        self.written: dict[tuple[str, int], int] = {}

    def _delivered(self, err: Any, msg: Any) -> None:
        assert err is None, err
        key = (msg.topic(), msg.partition())
        self.written[key] = max(self.written.get(key, -1), msg.offset())

    def order(self, event: OrderEvent) -> None:
        record = {**dataclasses.asdict(event), "type": event.type.value}
        self.out.produce(topics.ORDERS, key=event.order_id, on_delivery=self._delivered,
                         value=self.catalog.encode("OrderEvent", record))

    def payment(self, event: PaymentEvent, received_at: int) -> None:
        # Verified events straight onto intake's output: intake has its own tests, and the
        # three providers' signatures are not what this day is about.
        value = VerifiedPayment(event, received_at, f"dlv-{event.event_id}")
        self.out.produce(topics.PAYMENTS, key=event.order_id, on_delivery=self._delivered,
                         value=topics.PAYMENTS_TOPIC.encode(value))

    def settlement(self, record: dict[str, Any]) -> None:
        # Keyed by merchant, as an importer must: one merchant's files stay in order, so a
        # later file's watermark never overtakes an earlier file's lines.
        key = f"{record['provider']}|{record['merchant_id']}"
        self.out.produce(topics.SETTLEMENTS, key=key, on_delivery=self._delivered,
                         value=self.catalog.encode("SettlementRecord", record))

    def processed(self, workers: list, timeout_s: float = 120.0) -> None:
        """Flush, then wait until the workers' group committed past every record written."""
        assert self.out.flush(60) == 0
        admin = admin_client(self.settings)
        request = ConsumerGroupTopicPartitions(
            self.settings.app_id, [TopicPartition(t, p) for t, p in self.written]
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for worker in workers:
                assert worker.process.poll() is None, worker.log()[-3000:]
            futures = admin.list_consumer_group_offsets([request], require_stable=True)
            committed = {(tp.topic, tp.partition): tp.offset
                         for f in futures.values() for tp in f.result().topic_partitions}
            if all(committed[key] > offset for key, offset in self.written.items()):
                return
            time.sleep(0.2)
        raise AssertionError("the workers did not catch up")


def _phases(orders: list[Order]) -> list[list[tuple[int, Any]]]:
    inputs = sorted((item for order in orders for item in order_inputs(order)),
                    key=lambda item: item[0])

    def kind(item: Any) -> str:
        if isinstance(item, OrderEvent):
            return "refund-request" if item.type is OrderEventType.REFUND_REQUESTED else "order"
        if item.kind is PaymentKind.REFUND_SUCCEEDED:
            return "refund"
        return "payment"

    phases: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for when, item in inputs:
        assert not isinstance(item, RiskVerdict)
        late = isinstance(item, PaymentEvent) and when > item.occurred_at
        phases["late" if late else kind(item)].append((when, item))
    return [phases[name] for name in ("order", "payment", "refund-request", "refund", "late")]


def test_a_day_of_traffic_gives_one_break_per_injected_fault(kafka_env, workers, tmp_path):
    settings = settings_from(kafka_env)
    # The day's orders and files name all three providers: each must be configured.
    worker = workers.start("day", **kafka_env, **provider_secrets(tmp_path).env)
    orders = [o for o in generate(random.Random(SEED)) if o.label != NEEDS_RISK]
    lines = provider_lines(orders)
    busy = Counter((line.order.provider, line.order.merchant_id, line.batch_hour)
                   for line in lines)
    wrong_totals = sorted(key for key, count in busy.items() if key[2] == 5 and count > 3)[0]
    order_phase, payments, refund_requests, refunds, late = _phases(orders)

    out = Producer(settings)
    paid = {o.order_id for o in orders if o.label not in ("unpaid", "dropped_callback")}

    def all_credited(rs: list) -> bool:
        return {c["order_id"] for c in decode_all(rs, topics.CREDITS)} >= paid

    for phase in (order_phase, payments, refund_requests, refunds):
        for when, item in phase:
            if isinstance(item, OrderEvent):
                out.order(item)
            else:
                out.payment(item, when)
        out.processed([worker])
        if phase is payments:
            # A credit waits for the order's risk decision, which takes its own path: the
            # refunds are requested once every payment is credited, as in event time.
            assert all_credited(read_until(settings, [topics.CREDITS], all_credited,
                                           timeout_s=180, workers=[worker]))
    for _, records in settlement_files(lines, wrong_totals):
        for record in records:
            out.settlement(record)
    out.processed([worker])
    # The proofs go on through reconciliation and the order stage: the callbacks that
    # come back late must find their orders already credited, as in event time.
    dropped = {o.order_id for o in orders if o.label == "dropped_callback"}

    def proofs_credited(rs: list) -> bool:
        return {c["order_id"] for c in decode_all(rs, topics.CREDITS)
                if c["caused_by"].startswith("settlement:")} == dropped

    assert proofs_credited(read_until(settings, [topics.CREDITS], proofs_credited,
                                      workers=[worker]))
    for when, item in late:
        out.payment(item, when)
    out.processed([worker])

    wanted = sum(1 for o in orders if EXPECTED[o.label] is not None)
    records = read_until(
        settings,
        [topics.RECON_BREAKS, topics.CREDITS, topics.ALERTS, topics.CONTROL],
        lambda rs: len(decode_all(rs, topics.RECON_BREAKS)) >= wanted,
        timeout_s=180, workers=[worker],
    )

    found: dict[str, list[str]] = defaultdict(list)
    for found_break in decode_all(records, topics.RECON_BREAKS):
        found[found_break["order_id"]].append(f"{found_break['category']}/{found_break['action']}")
    wrong = [(o.order_id, o.label, found[o.order_id]) for o in orders
             if "+".join(sorted(found[o.order_id])) != (EXPECTED[o.label] or "")]
    assert not wrong, f"{len(wrong)} orders misjudged, e.g. {wrong[:5]}"
    assert sum(len(v) for v in found.values()) == wanted

    batch_alerts = [a for a in decode_all(records, topics.ALERTS)
                    if a["kind"] == "BATCH_TOTALS_MISMATCH"]
    assert [a["details"]["batch_id"] for a in batch_alerts] == [
        f"{wrong_totals[1]}-h{wrong_totals[2]:02d}"
    ]

    credits = decode_all(records, topics.CREDITS)
    assert len({c["entry_id"] for c in credits}) == len(credits)
    credited = Counter(c["order_id"] for c in credits if c["op"] == "CREDIT")
    assert credited == Counter(o.order_id for o in orders if o.label != "unpaid")
    proved = {c["order_id"]: c for c in credits if c["caused_by"].startswith("settlement:")}
    assert set(proved) == dropped
    for order_id, credit in proved.items():
        assert credit["entry_id"] == entry_id(order_id, "CREDIT", f"txn-{order_id}", None)

    frozen = {c["scope"] for c in decode_all(records, topics.CONTROL)}
    assert frozen == {f"account:acc-{o.order_id}" for o in orders if o.label == "missing_line"}
