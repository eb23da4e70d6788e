"""A seeded flood of hostile records on every input topic: each one is accounted for.

Every hostile record is dead-lettered exactly once, carrying its original bytes; every
valid order among them gets its status. The worker stays up throughout.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from streams import topics
from streams.codecs import default_catalog
from streams.kafka_clients import producer
from tests.builders import NOW_MS, order_event, settlement_line
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from

PER_TOPIC = 3000
FUTURE = NOW_MS + 365 * 24 * 3600 * 1000 * 100  # a century after the broker timestamp


def _garbage(rng: random.Random) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))


def _hostile_order(rng: random.Random, n: int) -> dict[str, Any]:
    order = order_event(f"fz-o-{n}", at=NOW_MS + n)
    field, value = rng.choice([
        ("amount_minor", -rng.randint(1, 10**6)),
        ("amount_minor", 10**12 + rng.randint(1, 10**6)),
        ("amount_minor", 0),
        ("currency", rng.choice(["usd", "US", "USDX", "", "€€€"])),
        ("occurred_at", rng.choice([-1, -(2**40), FUTURE, 2**63 - 1])),
        ("order_id", ""),
        ("account_id", ""),
        ("event_id", ""),
        ("order_id", "x" * rng.randint(1025, 5000)),
        ("merchant_id", "m" * rng.randint(1025, 5000)),
        ("promo_bonus_minor", -1),
        ("provider", rng.choice(["paypal", "HMAC", "hmac ", "stripe\x00"])),
    ])
    order[field] = value
    return order


def _hostile_line(rng: random.Random, n: int) -> dict[str, Any]:
    line = settlement_line(f"fz-r-{n}", f"fz-b-{n % 7}", f"fz-o-{n}", 1000, NOW_MS)
    field, value = rng.choice([
        ("amount_minor", -rng.randint(1, 10**6)),
        ("amount_minor", 10**12 + rng.randint(1, 10**6)),
        ("fee_minor", -1),
        ("record_id", "r" * rng.randint(1025, 5000)),
        ("order_id", ""),
        ("order_id", None),
    ])
    line[field] = value
    return line


def _hostile_delivery(rng: random.Random, n: int) -> dict[str, Any]:
    delivery = {"delivery_id": f"fz-d-{n}", "provider": "hmac", "received_at": NOW_MS,
                "headers": {"content-type": "application/json"},
                "body": _garbage(rng), "source_ip": None}
    field, value = rng.choice([
        ("headers", {"x-topup-signature": f"t={NOW_MS // 1000},v1={rng.getrandbits(64):x}"}),
        ("headers", {}),
        ("provider", rng.choice(["paypal", "HMAC", "", "hmac "])),
        ("received_at", FUTURE),
        ("received_at", -5),
    ])
    delivery[field] = value
    return delivery


def test_thousands_of_hostile_records_are_each_dead_lettered_once(kafka_env, workers):
    settings = settings_from(kafka_env)
    catalog = default_catalog()
    rng = random.Random(1313)
    out = producer(settings)
    hostile: dict[tuple[str, int, int], bytes] = {}
    valid_orders: set[str] = set()

    def produce(topic: str, key: bytes, value: bytes, bad: bool) -> None:
        def delivered(err, msg) -> None:  # type: ignore[no-untyped-def]
            assert err is None
            if bad:
                hostile[(msg.topic(), msg.partition(), msg.offset())] = msg.value()
        out.produce(topic, key=key, value=value, on_delivery=delivered)
        out.poll(0)

    makers: dict[str, tuple[str, Callable[[random.Random, int], dict[str, Any]]]] = {
        topics.ORDERS: ("OrderEvent", _hostile_order),
        topics.SETTLEMENTS: ("SettlementRecord", _hostile_line),
        topics.WEBHOOKS: ("WebhookDelivery", _hostile_delivery),
    }
    for topic, (schema, make) in makers.items():
        for n in range(PER_TOPIC):
            roll = rng.random()
            if roll < 0.15:
                produce(topic, f"k{n}".encode(), _garbage(rng), bad=True)
            elif roll < 0.25:  # a valid record's encoding cut short
                value = catalog.encode(schema, make(rng, n))
                produce(topic, f"k{n}".encode(), value[: rng.randint(1, len(value) - 1)],
                        bad=True)
            elif topic == topics.ORDERS and roll < 0.40:
                order = order_event(f"fz-ok-{n}", at=NOW_MS + n)
                valid_orders.add(order["order_id"])
                produce(topic, order["order_id"].encode(), catalog.encode(schema, order),
                        bad=False)
            else:
                produce(topic, f"k{n}".encode(), catalog.encode(schema, make(rng, n)), bad=True)
    assert out.flush(60) == 0

    started = time.monotonic()
    worker = workers.start(TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS))
    records = read_until(
        settings, [topics.DLQ, topics.ORDER_STATUS],
        lambda rs: sum(r.topic == topics.DLQ for r in rs) >= len(hostile)
        and {s["order_id"] for s in decode_all(rs, topics.ORDER_STATUS)} >= valid_orders,
        timeout_s=180, workers=[worker])
    assert worker.process.poll() is None, worker.log()[-3000:]

    letters = decode_all(records, topics.DLQ)
    where = Counter((d["source_topic"], d["partition"], d["offset"]) for d in letters)
    missing = set(hostile) - set(where)
    assert not missing, f"{len(missing)} not dead-lettered, e.g. {sorted(missing)[:5]}"
    twice = {w: c for w, c in where.items() if c > 1}
    assert not twice, f"dead-lettered more than once: {list(twice.items())[:5]}"
    assert set(where) == set(hostile), "a valid record was dead-lettered"
    for letter in letters:
        assert letter["value"] == hostile[
            (letter["source_topic"], letter["partition"], letter["offset"])]
    statuses = {s["order_id"] for s in decode_all(records, topics.ORDER_STATUS)}
    assert valid_orders <= statuses
    assert not {s for s in statuses if s.startswith("fz-o-")}, "a hostile order got a status"
    print(f"{len(hostile)} hostile records accounted for in {time.monotonic() - started:.1f}s")
