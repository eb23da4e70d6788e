"""Issue 16, standby replicas: a worker keeps warm copies of the store partitions it does
not own, so taking them over after a SIGKILL restores only the tail; a standby only reads
Kafka, and its copies are exactly the changelogs' committed state."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable

import pytest
from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.codecs import default_catalog
from streams.config import Settings
from streams.metrics import Metrics
from streams.runtime.closed_stores import ClosedStores
from streams.runtime.standby import Standby
from streams.runtime.store import families
from streams.topology import all_stages
from streams.worker_config import runtime_config
from tests.chaos.state_harness import member_partitions
from tests.integration.flow import Flow
from tests.integration.store_checks import (
    RESTORED,
    assert_stores_hold_the_changelogs,
    changelog_records,
    credits_until,
    pay,
    state_env,
)
from tests.kafka_harness import WorkerFactory, WorkerProcess, http, settings_from

_CHANGELOG_PARTITION = re.compile(r"-changelog\[(\d+)\]")
_GAUGE = re.compile(r"^(topup_standby_\w+) (\S+)$", re.M)


def _standby_env(kafka_env: dict[str, str]) -> dict[str, str]:
    # No idle ticks: once traffic stops no worker commits anything, so a standby that has
    # caught up has exactly nothing left for the owner to restore.
    return {**state_env(kafka_env), "TOPUP_STANDBY_REPLICAS": "1", "TOPUP_IDLE_ADVANCE_S": "3600"}


def _gauges(text: str) -> dict[str, float]:
    return {name: float(value) for name, value in _GAUGE.findall(text)}


def _worker_gauges(worker: WorkerProcess) -> dict[str, float]:
    try:
        _, body = http("GET", f"http://127.0.0.1:{worker.web_port}/metrics")
    except OSError:
        return {}
    return _gauges(body.decode())


def _wait_caught_up(read: Callable[[], dict[str, float]], what: str,
                    timeout_s: float = 120) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    gauges: dict[str, float] = {}
    while time.monotonic() < deadline:
        gauges = read()
        if (gauges.get("topup_standby_partitions", 0) > 0
                and gauges.get("topup_standby_records_total", 0) > 0
                and gauges.get("topup_standby_lag_records") == 0):
            return gauges
        time.sleep(0.2)
    raise AssertionError(f"{what}: standby not caught up in {timeout_s}s: {gauges}")


def _restores(worker: WorkerProcess) -> list[tuple[int, str]]:
    return [(int(m.group(1)), m.group(0)) for m in RESTORED.finditer(worker.log())]


def _wait_restores(worker: WorkerProcess, count: int, timeout_s: float = 120
                   ) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout_s
    while len(found := _restores(worker)) < count:
        assert worker.process.poll() is None, worker.log_tail()
        assert time.monotonic() < deadline, f"no restore #{count}:\n{worker.log_tail()}"
        time.sleep(0.2)
    return found


def _committed_changelog_records(settings: Settings, partitions: set[int]) -> int:
    return sum(1 for record in changelog_records(settings) if record.partition in partitions)


def _split_between_two(env: dict[str, str], workers: WorkerFactory, settings: Settings,
                       flow: Flow) -> tuple[WorkerProcess, WorkerProcess, set[str]]:
    """"b" owns everything first and credits some orders; "a" joins and gets half, each
    keeping the other's half warm; more orders (each paid twice) are credited. Returns a,
    b and the orders credited."""
    b = workers.start("b", **env)
    expected = pay(flow, 0, 60)
    credits_until(settings, expected, b)
    a = workers.start("a", **env)
    _wait_restores(a, 1)
    deadline = time.monotonic() + 60
    while len(members := member_partitions(settings)) != 2 or not all(members):
        assert time.monotonic() < deadline, members
        time.sleep(0.2)
    expected |= pay(flow, 60, 120, twice=True)
    credits_until(settings, expected, b)
    return a, b, expected


def test_a_failover_restores_only_the_tail_the_standby_had_not_applied(kafka_env, workers,
                                                                     tmp_path):
    env = _standby_env(kafka_env)
    settings = settings_from(env)
    flow = Flow(settings)

    # "a" never owned b's half, so only its standby can have built those stores.
    a, b, expected = _split_between_two(env, workers, settings, flow)
    _wait_caught_up(lambda: _worker_gauges(a), "a")

    # The store partitions a's last assignment opened are its own; the rest are b's.
    restores = _restores(a)
    a_half = {int(p) for p in _CHANGELOG_PARTITION.findall(restores[-1][1])}
    b_half = set(range(settings.partitions)) - a_half
    assert a_half and b_half, restores[-1][1]
    b.kill()
    [*_, (restored, line)] = _wait_restores(a, len(restores) + 1)

    # Without the standby, a (which never owned b's half) would have restored every
    # record of b's half's changelogs; with it, a caught-up copy leaves nothing.
    assert _committed_changelog_records(settings, b_half) > 100
    assert restored == 0 and line.endswith("full: -"), a.log_tail()

    # Exactly once after the takeover: every payment again, and a few new orders.
    expected |= pay(flow, 0, 180) | pay(flow, 180, 10)
    counts = credits_until(settings, expected, a)
    assert set(counts) == expected and max(counts.values()) == 1
    a.stop()
    assert_stores_hold_the_changelogs(settings, tmp_path / "state-a")


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_a_worker_keeps_warm_the_partitions_it_hands_over(kafka_env, workers, protocol):
    """The other direction: b owned everything and hands half to a newcomer, then takes it
    back when the newcomer dies. Its own copies of that half are removed a second after it
    closed them (TOPUP_STATE_CLEANUP_DELAY_S), so only its standby can have kept them. Under
    KIP-848 no assignment follows the revocation to start that standby."""
    env = {**_standby_env(kafka_env), "TOPUP_GROUP_PROTOCOL": protocol,
           "TOPUP_STATE_CLEANUP_DELAY_S": "1"}
    settings = settings_from(env)
    flow = Flow(settings)
    a, b, expected = _split_between_two(env, workers, settings, flow)
    _wait_caught_up(lambda: _worker_gauges(b), "b", timeout_s=60)

    restores = len(_restores(b))
    a.kill()
    [*_, (restored, line)] = _wait_restores(b, restores + 1)
    assert restored == 0 and line.endswith("full: -"), b.log_tail()
    expected |= pay(flow, 180, 10)
    counts = credits_until(settings, expected, b)
    assert set(counts) == expected and max(counts.values()) == 1


def _end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    request = {TopicPartition(name, p): OffsetSpec.latest()
               for name, topic in admin.list_topics(timeout=30).topics.items()
               if not name.startswith("__") for p in topic.partitions}
    futures = admin.list_offsets(request, isolation_level=IsolationLevel.READ_UNCOMMITTED)
    return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}


def test_a_standby_only_reads_and_its_copies_are_the_changelogs(kafka_env, workers, tmp_path):
    env = _standby_env(kafka_env)
    settings = settings_from(env)
    flow = Flow(settings)
    worker = workers.start("w", **env)
    expected = pay(flow, 0, 60, twice=True)
    credits_until(settings, expected, worker)
    worker.stop()
    before = _end_offsets(settings)

    # A standby of every store partition, as a worker that owns none would keep.
    standby_dir = tmp_path / "standby"
    standby_settings = dataclasses.replace(settings, state_dir=standby_dir)
    specs = families(spec for stage in all_stages(standby_settings, default_catalog(),
                                                  Metrics()) for spec in stage.stores)
    metrics = Metrics(process_metrics=False)
    standby = Standby(runtime_config(standby_settings), specs, ClosedStores(standby_dir, 600),
                      metrics)
    standby.follow_all_but(set())
    try:
        _wait_caught_up(lambda: _gauges(metrics.render()), "standby")
        assert len(standby.held()) == len(specs) * settings.partitions
    finally:
        standby.stop()
    assert standby.held() == set()

    assert _end_offsets(settings) == before
    assert_stores_hold_the_changelogs(settings, standby_dir)
