"""The benchmark's workload is the happy path it claims to be: handled in the order it was
produced, every order is credited, and nothing is held, late or alerted on the way."""

from __future__ import annotations

import random
from collections import Counter

from bench.domain_only import in_process_topology
from bench.workload import order_and_callback
from streams import topics
from streams.codecs import default_catalog
from streams.partitioning import partition_for
from streams.runtime.context import Record

# Enough orders that a second of event time apart (the demo's spacing) runs past the
# velocity grace between partitions within one batch: those observations came late.
ORDERS = 1_000


def test_the_bench_workload_credits_every_order_with_nothing_late_held_or_alerted(tmp_path):
    topology = in_process_topology("127.0.0.1:9", tmp_path, retain_outputs=True)
    catalog, rng = default_catalog(), random.Random(1)
    records: list[Record] = []
    offsets: Counter[tuple[str, int]] = Counter()

    def produced(topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        where = (topic, partition_for(key, topology.partitions))
        records.append(Record(*where, offsets[where], key, value, timestamp_ms, ()))
        offsets[where] += 1

    for index in range(ORDERS):
        order, callback = order_and_callback("happy", index, rng)
        key = order["order_id"].encode()
        produced(topics.ORDERS, key, catalog.encode("OrderEvent", order), order["occurred_at"])
        produced(topics.WEBHOOKS, key, catalog.encode("WebhookDelivery", callback),
                 callback["received_at"])
    topology.pipe_records(records)

    assert len(topology.read_output(topics.CREDITS)) == ORDERS
    assert topology.read_output(topics.ALERTS) == []
    audited = Counter(catalog.decode("AuditRecord", send.value)["action"]
                      for send in topology.read_output(topics.AUDIT))
    assert audited == {"RISK_ALLOW": ORDERS, "RISK_VERDICT": ORDERS, "CREDIT": ORDERS}
