"""Pre-produced benchmark input: N orders and N signed HMAC callbacks, from a seed."""

from __future__ import annotations

import random

from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.kafka_clients import producer
from streams.providers.testing import make_hmac_delivery
from streams.workload import order_created, paid_event

SECRET = "bench-hmac-secret"
# Orders 1 ms apart in event time: about the rate the topology is asked to handle them.
# The demo's second apart, replayed here at a thousand orders a second, ran event time a
# thousand times faster than the records: a few hundred orders of skew between
# partitions was past the velocity grace, so about two observations per order came late
# (not counted, audited), which a live pipeline never sees.
ORDER_SPACING_MS = 1


def order_and_callback(run_id: str, index: int, rng: random.Random) -> tuple[dict, dict]:
    """An order and its payment callback (a WebhookDelivery record), paid 500 ms after it
    was created and signed at the time it claims to be received, so the signature's age
    check passes whenever it is replayed."""
    order = order_created(run_id, index, rng, spacing_ms=ORDER_SPACING_MS).record
    return order, callback_for(order, f"{run_id}-d{index}")


def callback_for(order: dict, delivery_id: str) -> dict:
    paid_at = order["occurred_at"] + 500
    delivery = make_hmac_delivery(
        paid_event(order, order["amount_minor"], paid_at), SECRET, timestamp=paid_at // 1000
    )
    return delivery.as_record(delivery_id, paid_at)


def produce_workload(settings: Settings, orders: int, seed: int = 1) -> int:
    """Returns the number of input records produced (orders + callbacks)."""
    catalog = default_catalog()
    out = producer(settings, **{"linger.ms": 20, "batch.num.messages": 10_000})
    rng = random.Random(seed)
    for index in range(orders):
        order, callback = order_and_callback("bench", index, rng)
        out.produce(topics.ORDERS, key=order["order_id"],
                    value=catalog.encode("OrderEvent", order))
        out.produce(topics.WEBHOOKS, key=order["order_id"],
                    value=catalog.encode("WebhookDelivery", callback))
        if index % 5_000 == 0:
            out.poll(0)
    out.flush(120)
    return 2 * orders
