"""The first real loop: orders in, order-status and dead letters out, through a real broker."""

from __future__ import annotations

import random

from streams import topics
from streams.codecs import default_catalog
from streams.kafka_clients import producer
from streams.workload import order_created
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from

GARBAGE = b"\xc3\x01not-a-fingerprint-or-body"


def test_created_orders_get_one_status_and_bad_bytes_reach_the_dlq(kafka_env, workers):
    settings = settings_from(kafka_env)
    catalog = default_catalog()
    rng = random.Random(1)
    orders = [order_created("loop", i, rng) for i in range(6)]

    out = producer(settings)
    delivered: dict[str, tuple[int, int]] = {}

    def remember(err, msg):  # type: ignore[no-untyped-def]
        assert err is None
        delivered[msg.key().decode()] = (msg.partition(), msg.offset())

    for order in [*orders, orders[0], orders[3]]:  # two re-sent events
        out.produce(
            topics.ORDERS,
            key=order.record["order_id"],
            value=catalog.encode("OrderEvent", order.record),
            headers=[("correlation_id", order.correlation_id.encode())],
        )
    out.produce(topics.ORDERS, key="bad-record", value=GARBAGE, on_delivery=remember)
    out.flush(30)

    # The orders name hmac: a provider must be configured for its orders to be taken.
    worker = workers.start(TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS))
    records = read_until(
        settings,
        [topics.ORDER_STATUS, topics.DLQ],
        lambda rs: sum(r.topic == topics.ORDER_STATUS for r in rs) >= len(orders)
        and any(r.topic == topics.DLQ for r in rs),
        workers=[worker],
    )
    assert worker.process.poll() is None, worker.log()

    statuses = decode_all(records, topics.ORDER_STATUS)
    assert sorted(s["order_id"] for s in statuses) == sorted(o.record["order_id"] for o in orders)
    assert {(s["status"], s["version"], s["previous_status"]) for s in statuses} == {
        ("CREATED", 1, None)
    }
    by_order = {o.record["order_id"]: o for o in orders}
    for record in (r for r in records if r.topic == topics.ORDER_STATUS):
        order_id = record.key.decode()
        assert record.headers["correlation_id"] == by_order[order_id].correlation_id.encode()

    [letter] = decode_all(records, topics.DLQ)
    assert letter["value"] == GARBAGE
    assert letter["key"] == b"bad-record"
    assert letter["error_kind"] == "UNDECODABLE"
    assert letter["error"]
    assert (letter["source_topic"], letter["partition"], letter["offset"]) == (
        topics.ORDERS,
        *delivered["bad-record"],
    )
