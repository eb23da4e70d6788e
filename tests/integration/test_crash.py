"""Behaviour 9: a worker killed at any point never makes the ledger hold an entry twice,
and never loses one: the crash proof of issue 4."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Producer

from streams import topics
from streams.domain.common.ids import entry_id
from tests.builders import NOW_MS, order_event, payment_event
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from

ORDERS = 2_000
NEVER_FIRES = Path(__file__).resolve().parents[2] / "bench" / "rules-that-never-fire.yaml"
KILLS = 6


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


@pytest.mark.parametrize("orders_partitioner", ["murmur2_random", "consistent_random"])
def test_killed_workers_never_duplicate_or_lose_a_credit(kafka_env, workers, orders_partitioner):
    """Also with orders from a producer with librdkafka's default partitioner, so most
    of them are moved to their key's partition while workers die."""
    # Every stage runs, risk included, but no rule may hold a credit: this test is about
    # exactly-once, and the expected ledger is every valid payment.
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS),
           "TOPUP_SESSION_TIMEOUT_S": "6", "TOPUP_RISK_RULES": str(NEVER_FIRES)}
    settings = settings_from(env)
    orders, callbacks, expected = crash_workload(seed=9)
    rng = random.Random(11)

    def produce() -> None:
        feed(settings, orders, callbacks, slice_size=150, pause_s=0.1,
             partitioner=orders_partitioner)

    producer_thread = threading.Thread(target=produce)
    producer_thread.start()
    killed_while_processing = 0
    for kill in range(KILLS):
        worker = workers.start(f"crash-{kill}", **env)
        if kill % 3 == 2:
            # Any moment: while starting, joining the group or restoring.
            time.sleep(rng.uniform(0.5, 6.0))
        else:
            # While processing: once it owns partitions (a join waits out the dead member).
            deadline = time.monotonic() + 60
            while "assigned" not in worker.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(rng.uniform(0.2, 3.0))
        killed_while_processing += "assigned" in worker.log()
        worker.kill()
    producer_thread.join()
    assert killed_while_processing >= 4

    final = workers.start("final", **env)
    records = read_until(
        settings, [topics.CREDITS],
        lambda rs: len({c["entry_id"] for c in decode_all(rs, topics.CREDITS)}) >= len(expected),
        timeout_s=300, workers=[final],
    )
    assert_exactly_once(decode_all(records, topics.CREDITS), expected)


def feed(settings, orders: list[dict], callbacks: list, slice_size: int, pause_s: float,
         partitioner: str = "murmur2_random") -> None:
    """Traffic that keeps arriving while workers die: a slice, then a pause, in event time
    order, produced by a plain producer with `partitioner`."""
    flow = Flow(settings)
    flow.producer = Producer({"bootstrap.servers": settings.bootstrap_servers,
                              "partitioner": partitioner})
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


def assert_exactly_once(credits: list[dict], expected: dict) -> None:
    """Every expected entry_id credited once, none other, and the balances they add up to."""
    counts = Counter(c["entry_id"] for c in credits)
    assert [e for e, n in counts.items() if n > 1] == []
    assert set(counts) == set(expected)

    derived: dict[str, int] = defaultdict(int)
    for credit in credits:
        derived[credit["account_id"]] += credit["amount_minor"] + credit["bonus_minor"]
    wanted: dict[str, int] = defaultdict(int)
    for account, amount in expected.values():
        wanted[account] += amount
    assert derived == wanted

