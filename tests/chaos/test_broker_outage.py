"""Issue 14: broker outages mid-flight, on a production-like cluster of its own (three
KRaft nodes, RF 3, min.insync.replicas 2; deploy/kafka/cluster), then the brokers are
started again.

- One node stopped for 20 s: leadership moves, the workers keep crediting.
- Two of three nodes stopped for 5 s and for 20 s: below min.insync.replicas and without
  a controller quorum nothing can commit. The workers resume by themselves within
  RESUME_BOUND_S of the brokers' return, exactly-once intact; while they are stuck /health
  answers 503; SIGTERM during the outage ends a worker within SHUTDOWN_BOUND_S.

A single node is not used: its controlled shutdown during a commit can complete a
transaction without writing its markers (topology.md, "A hanging transaction"), which no
worker may end on its own. A replicated cluster always keeps a leader for the markers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import SEEDS, Traffic, chaos_env, health, wait_for
from tests.kafka_harness import KAFKA_DIR, TEST_PORT, settings_from

RESUME_BOUND_S = 150.0
# TOPUP_SHUTDOWN_TIMEOUT_S (15, chaos_env) plus the interpreter's own exit.
SHUTDOWN_BOUND_S = 25.0
# Our own ports, above the session broker's (TEST_PORT, TEST_PORT+1).
CLUSTER_PORT = TEST_PORT + 10


class Cluster:
    def __init__(self, data_dir: Path) -> None:
        self.env = dict(os.environ, TOPUP_KAFKA_PORT=str(CLUSTER_PORT), TOPUP_KAFKA_NODES="3",
                        TOPUP_KAFKA_DATA_DIR=str(data_dir),
                        TOPUP_KAFKA_HEAP=os.environ.get("TOPUP_KAFKA_HEAP", "384m"))

    def run(self, *args: str) -> str:
        result = subprocess.run([str(KAFKA_DIR / "cluster"), *args], env=self.env,
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"deploy/kafka/cluster {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout.strip()

    def stop_nodes(self, nodes: list[int]) -> None:
        """Together, as a rack or zone going away (each a controlled shutdown)."""
        procs = [subprocess.Popen([str(KAFKA_DIR / "cluster"), "stop-node", str(n)],
                                  env=self.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for n in nodes]
        for proc in procs:
            assert proc.wait(timeout=120) == 0

    def start_nodes(self, nodes: list[int]) -> None:
        procs = [subprocess.Popen([str(KAFKA_DIR / "cluster"), "start-node", str(n)],
                                  env=self.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for n in nodes]
        for proc in procs:
            assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("kafka-cluster"))
    cluster.bootstrap = cluster.run("start").splitlines()[-1]  # type: ignore[attr-defined]
    yield cluster
    cluster.run("stop")


@pytest.fixture(scope="module")
def kafka_bootstrap(cluster: Cluster) -> str:
    """This module's tests run on the cluster, not on the session's single broker."""
    return cluster.bootstrap  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize(("stopped", "outage_s"), [([2], 20), ([2, 3], 5), ([2, 3], 20)],
                         ids=["one-node-20s", "majority-5s", "majority-20s"])
def test_workers_resume_by_themselves_after_a_broker_outage(
    cluster, kafka_env, workers, stopped, outage_s
):
    env = chaos_env(kafka_env, TOPUP_REPLICATION_FACTOR="3")
    settings = settings_from(env)
    first = workers.start("first", **env)
    second = workers.start("second", **env)
    wait_for("both workers serve", lambda: health(first) == 200 and health(second) == 200, 120)
    traffic = Traffic(settings, seed=SEEDS[1], slice_size=20, pause_s=0.2).start()
    time.sleep(3)  # mid-flight: batches in progress on both workers

    majority_lost = len(stopped) >= 2
    away_since = time.monotonic()
    cluster.stop_nodes(stopped)
    try:
        if majority_lost and outage_s >= 20:
            wait_for("/health 503 while the brokers are away", lambda: health(first) == 503,
                     outage_s - 2)
            second.process.send_signal(signal.SIGTERM)
            term_at = time.monotonic()
            second.process.wait(timeout=SHUTDOWN_BOUND_S)
            assert time.monotonic() - term_at < SHUTDOWN_BOUND_S
        time.sleep(max(0.0, away_since + outage_s - time.monotonic()))
    finally:
        cluster.start_nodes(stopped)

    survivors = [first] if majority_lost and outage_s >= 20 else [first, second]
    took = traffic.assert_exactly_once(survivors, timeout_s=RESUME_BOUND_S)
    assert took < RESUME_BOUND_S
    wait_for("/health 200 again", lambda: health(first) == 200, 30)
