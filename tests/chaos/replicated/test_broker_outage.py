"""Issue 14: broker outages mid-flight, on a production-like cluster of its own (three
KRaft nodes, RF 3, min.insync.replicas 2; deploy/kafka/cluster), then the brokers are
started again.

- One broker stopped for 5 s and for 20 s: leadership moves, and every credit arrives
  exactly once within RESUME_BOUND_S; over 20 s, SIGTERM ends a worker meanwhile within
  SHUTDOWN_BOUND_S.
- Two of three stopped for 20 s: below min.insync.replicas and without a controller
  quorum nothing can commit. /health answers 503, SIGTERM ends a worker in time, and the
  other resumes by itself once they are back, never crediting twice.

Every topic has three replicas: one broker of three stopped always leaves a leader for a
commit's markers. A partition without one (a single node's, or one whose in-sync replicas
all left together) can have a transaction completed without its markers (topology.md, "A
hanging transaction"), which no worker may end on its own; test_single_broker_outage.py
holds a single node to what it can promise."""

from __future__ import annotations

import time

import pytest

from tests.chaos.harness import chaos_env, health, wait_for
from tests.chaos.outage import (
    RESUME_BOUND_S,
    assert_resumed_unless_kafka_hung,
    sigterm_ends,
    start_traffic,
)


@pytest.mark.parametrize("outage_s", [5, 20])
def test_workers_keep_every_credit_exactly_once_through_a_broker_outage(
    kafka_cluster, kafka_env, workers, outage_s
):
    """A broker of three stopped mid-flight (controlled shutdown), started again after
    `outage_s`; over 20 s a worker is also stopped with SIGTERM meanwhile."""
    first, second, traffic = start_traffic(kafka_env, workers)
    away_since = time.monotonic()
    kafka_cluster.stop_nodes([2])
    try:
        if outage_s >= 20:
            sigterm_ends(second)
        time.sleep(max(0.0, away_since + outage_s - time.monotonic()))  # the outage itself
    finally:
        kafka_cluster.start_nodes([2])

    survivors = [first] if outage_s >= 20 else [first, second]
    took = traffic.assert_exactly_once(survivors, timeout_s=RESUME_BOUND_S)
    assert took < RESUME_BOUND_S


def test_workers_say_so_stop_when_told_and_resume_after_losing_a_majority(
    kafka_cluster, kafka_env, workers
):
    """Two of three brokers stopped together for 20 s: nothing can commit. /health
    answers 503, SIGTERM ends a worker within its bound, and once the brokers are back
    the other resumes by itself (outage.assert_resumed_unless_kafka_hung)."""
    first, second, traffic = start_traffic(kafka_env, workers)
    away_since = time.monotonic()
    kafka_cluster.stop_nodes([2, 3])
    try:
        wait_for("/health 503 while the brokers are away", lambda: health(first) == 503, 18)
        sigterm_ends(second)
        time.sleep(max(0.0, away_since + 20 - time.monotonic()))  # the outage itself
    finally:
        kafka_cluster.start_nodes([2, 3])
    assert_resumed_unless_kafka_hung(traffic, first, kafka_cluster.hanging_transactions)


def test_a_worker_started_while_a_broker_is_away_starts(kafka_cluster, kafka_env, workers):
    """A rolling restart of the brokers must not stop workers from (re)starting: the
    replication check counts the brokers holding replicas, not only the live ones."""
    kafka_cluster.stop_nodes([3])
    try:
        worker = workers.start("during", **chaos_env(kafka_env))
        wait_for("the worker serves", lambda: health(worker) == 200, 120)
    finally:
        kafka_cluster.start_nodes([3])
