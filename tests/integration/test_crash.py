"""Behaviour 9: a worker killed at any point never makes the ledger hold an entry twice,
and never loses one: the crash proof of issue 4."""

from __future__ import annotations

import random
import threading
import time

import pytest

from streams import topics
from tests.integration.crash_workload import NEVER_FIRES, assert_exactly_once, crash_workload, feed
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from

KILLS = 6


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
