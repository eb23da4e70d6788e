"""The crash proof's workload, the traffic that feeds it while workers die, and its
exactly-once check: shared by the crash test, the checkpointed-state tests and the
chaos suite (tests/chaos)."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from pathlib import Path

from confluent_kafka import Producer

from streams.domain.common.ids import entry_id
from tests.builders import NOW_MS, order_event, payment_event
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS

ORDERS = 2_000
NEVER_FIRES = Path(__file__).resolve().parents[2] / "bench" / "rules-that-never-fire.yaml"


def crash_workload(seed: int, count: int = ORDERS):
    """Orders over 500 accounts; most paid, some twice or re-signed, some never paid.
    Also the workload of the chaos suite (tests/chaos)."""
    rng = random.Random(seed)
    orders, callbacks, expected = [], [], {}
    for i in range(count):
        order_id = f"o-crash-{i:05d}"
        at = NOW_MS + i * 1_000
        bonus = rng.choice((0, 0, 0, 100))
        account = f"acct-{rng.randrange(500)}"
        orders.append(order_event(order_id, at=at, account_id=account,
                                  amount_minor=rng.choice((500, 1_000, 2_500)),
                                  promo_id="promo" if bonus else None, promo_bonus_minor=bonus))
        if rng.random() < 0.05:
            continue  # never paid: must never be credited
        paid = payment_event(order_id, amount=orders[-1]["amount_minor"], at=at + 500)
        deliveries = [(paid, paid.occurred_at, HMAC_SECRETS[0])]
        if rng.random() < 0.15:
            deliveries.append((paid, paid.occurred_at, HMAC_SECRETS[0]))  # delivered twice
        if rng.random() < 0.05:
            deliveries.append((paid, paid.occurred_at + 30_000, HMAC_SECRETS[1]))  # re-signed
        callbacks.extend(deliveries)
        expected[entry_id(order_id, "CREDIT", paid.external_txn_id, None)] = (
            account, paid.amount_minor + bonus
        )
    return orders, callbacks, expected


def feed(settings, orders: list[dict], callbacks: list, slice_size: int, pause_s: float,
         partitioner: str = "murmur2_random") -> None:
    """Traffic that keeps arriving while workers die: a slice, then a pause, in event time
    order, produced by a plain producer with `partitioner`."""
    flow = Flow(settings)
    failed: list[str] = []

    def delivered(error, message) -> None:
        if error is not None:
            failed.append(f"{message.topic()}: {error}")

    flow.producer = Producer({"bootstrap.servers": settings.bootstrap_servers,
                              "partitioner": partitioner, "on_delivery": delivered})
    pending = [("order", o) for o in orders] + [("callback", c) for c in callbacks]
    pending.sort(key=lambda item: item[1]["occurred_at"] if item[0] == "order" else item[1][1])
    for start in range(0, len(pending), slice_size):
        for kind, item in pending[start:start + slice_size]:
            if kind == "order":
                flow.order(item)
            else:
                flow.callback(item[0], received_at=item[1], secret=item[2])
        # Waits out a broker outage (the chaos suite stops it) as a client would.
        while flow.producer.flush(5) > 0:
            pass
        time.sleep(pause_s)
    # An input that never reached Kafka is the test's failure, not the workers'.
    assert not failed, f"upstream deliveries failed: {failed[:5]}"


def assert_exactly_once(credits: list[dict], expected: dict) -> None:
    """Every expected entry_id credited once, none other, and the balances they add up to."""
    counts = Counter(c["entry_id"] for c in credits)
    assert [e for e, n in counts.items() if n > 1] == []
    missing, extra = set(expected) - set(counts), set(counts) - set(expected)
    assert not missing and not extra, (
        f"{len(missing)} missing, e.g. {sorted(missing)[:5]}; {len(extra)} unexpected")

    derived: dict[str, int] = defaultdict(int)
    for credit in credits:
        derived[credit["account_id"]] += credit["amount_minor"] + credit["bonus_minor"]
    wanted: dict[str, int] = defaultdict(int)
    for account, amount in expected.values():
        wanted[account] += amount
    assert derived == wanted

