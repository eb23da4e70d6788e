"""What the broker-outage tests share: two workers under traffic, a bounded SIGTERM, and
the check after an outage in which nothing could commit."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from streams import topics
from streams.kafka_clients import read_committed
from tests.chaos.harness import SEEDS, Traffic, chaos_env, health, wait_for
from tests.kafka_harness import WorkerProcess, decode_all, settings_from

RESUME_BOUND_S = 150.0
# TOPUP_SHUTDOWN_TIMEOUT_S (15, chaos_env) plus the interpreter's own exit.
SHUTDOWN_BOUND_S = 25.0


def start_traffic(kafka_env: dict, workers) -> tuple[WorkerProcess, WorkerProcess, Traffic]:
    env = chaos_env(kafka_env)
    first = workers.start("first", **env)
    second = workers.start("second", **env)
    wait_for("both workers serve", lambda: health(first) == 200 and health(second) == 200, 120)
    traffic = Traffic(settings_from(env), seed=SEEDS[1], slice_size=20, pause_s=0.2).start()
    wait_for("credits flowing", lambda: bool(credits(traffic)), 60)
    return first, second, traffic


def credits(traffic: Traffic) -> list[dict]:
    records = read_committed(traffic.settings, [topics.CREDITS], until=time.monotonic() + 10,
                             idle_s=1.0)
    return decode_all(records, topics.CREDITS)


def sigterm_ends(worker: WorkerProcess) -> None:
    worker.process.send_signal(signal.SIGTERM)
    term_at = time.monotonic()
    worker.process.wait(timeout=SHUTDOWN_BOUND_S)
    assert time.monotonic() - term_at < SHUTDOWN_BOUND_S


def assert_resumed_unless_kafka_hung(traffic: Traffic, survivor: WorkerProcess,
                                     hanging_transactions: Callable[[], str]) -> None:
    """After an outage in which nothing could commit: the survivor credits every expected
    entry once and is healthy again. Kafka may instead have hung a transaction (a
    partition left without a leader; topology.md, "A hanging transaction"): then what
    was credited is still never twice nor unpaid, and Kafka's find-hanging must list it."""
    try:
        traffic.assert_exactly_once([survivor], timeout_s=RESUME_BOUND_S)
    except AssertionError:
        assert survivor.process.poll() is None, survivor.log()
        ids = [c["entry_id"] for c in credits(traffic)]
        assert len(ids) == len(set(ids)), "a credit written twice"
        assert set(ids) <= set(traffic.expected), "a credit nobody paid for"
        hanging = hanging_transactions()
        assert hanging, "credits missing, and no transaction left hanging by Kafka"
        print("incomplete only behind transactions Kafka left hanging:\n" + hanging)
        return
    wait_for("/health 200 again", lambda: health(survivor) == 200, 30)
