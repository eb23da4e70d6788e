"""Pre-produced benchmark input: N orders and N signed HMAC callbacks, from a seed."""

from __future__ import annotations

import random

from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.kafka_clients import producer
from streams.providers.testing import make_hmac_delivery
from streams.workload import BASE_TIME_MS, order_created, paid_event

SECRET = "bench-hmac-secret"


def produce_workload(settings: Settings, orders: int, seed: int = 1) -> int:
    """Returns the number of input records produced (orders + callbacks)."""
    catalog = default_catalog()
    out = producer(settings, **{"linger.ms": 20, "batch.num.messages": 10_000})
    rng = random.Random(seed)
    for index in range(orders):
        order = order_created("bench", index, rng).record
        out.produce(topics.ORDERS, key=order["order_id"],
                    value=catalog.encode("OrderEvent", order))
        paid_at = BASE_TIME_MS + index * 1_000 + 500
        delivery = make_hmac_delivery(
            paid_event(order, order["amount_minor"], paid_at), SECRET, timestamp=paid_at // 1000
        )
        record = delivery.as_record(f"bench-d{index}", paid_at)
        out.produce(topics.WEBHOOKS, key=order["order_id"],
                    value=catalog.encode("WebhookDelivery", record))
        if index % 5_000 == 0:
            out.poll(0)
    out.flush(120)
    return 2 * orders
