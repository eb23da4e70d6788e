"""Issue 16: local stores survive restarts with a checkpoint, restore only the changelog's
tail, fall back to a full restore when the local copy cannot be trusted, and end with
exactly the committed state even when killed between the commit and the local write."""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.domain.common.ids import entry_id
from streams.kafka_clients import read_committed
from streams.metrics import Metrics
from streams.runtime import crash_points
from streams.runtime.store import PartitionStore
from streams.topology import all_stages
from tests.builders import NOW_MS, order_event, payment_event
from tests.integration.crash_workload import NEVER_FIRES
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import (
    WorkerProcess,
    decode_all,
    http,
    read_until,
    settings_from,
    wait_for_http,
)

RESTORED = re.compile(r"restored \d+ store partitions \((\d+) records\).*full: (.*)$", re.M)


def _env(kafka_env: dict[str, str]) -> dict[str, str]:
    return {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS),
            "TOPUP_SESSION_TIMEOUT_S": "6", "TOPUP_RISK_RULES": str(NEVER_FIRES)}


def _pay(flow: Flow, first: int, count: int, twice: bool = False) -> set[str]:
    """Orders first..first+count, each paid (twice when `twice`); their credit entry ids."""
    expected = set()
    for i in range(first, first + count):
        order_id = f"o-state-{i:05d}"
        at = NOW_MS + i * 1_000
        flow.order(order_event(order_id, at=at))
        paid = payment_event(order_id, at=at + 500)
        for _ in range(2 if twice else 1):
            flow.callback(paid)
        expected.add(entry_id(order_id, "CREDIT", paid.external_txn_id, None))
    flow.flush()
    return expected


def _credits_until(settings: Settings, expected: set[str], worker: WorkerProcess) -> Counter:
    records = read_until(
        settings, [topics.CREDITS],
        lambda rs: {c["entry_id"] for c in decode_all(rs, topics.CREDITS)} >= expected,
        timeout_s=180, workers=[worker],
    )
    return Counter(c["entry_id"] for c in decode_all(records, topics.CREDITS))


def _changelogs(settings: Settings) -> list[str]:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    return sorted(name for name in admin.list_topics(timeout=30).topics
                  if name.startswith(f"{settings.app_id}-") and name.endswith("-changelog"))


def _changelog_records(settings: Settings) -> list:
    return read_committed(settings, _changelogs(settings),
                          until=time.monotonic() + 60, idle_s=2.0)


def _restored(worker: WorkerProcess, timeout_s: float = 120) -> tuple[int, str]:
    """Records restored by the worker's first assignment, and what it restored fully."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if match := RESTORED.search(worker.log()):
            return int(match.group(1)), match.group(2)
        assert worker.process.poll() is None, worker.log()
        time.sleep(0.2)
    raise AssertionError(f"no restore logged:\n{worker.log()}")


def _assert_stores_hold_the_changelogs(settings: Settings, state_dir: Path) -> None:
    """Every local store partition holds exactly its changelog's committed state."""
    catalog = default_catalog()
    specs = {spec.name: spec for stage in all_stages(settings, catalog, Metrics())
             for spec in stage.stores}
    record_changelog = {name: spec.changelog(settings.app_id) for name, spec in specs.items()}
    wanted: dict[tuple[str, int], dict[bytes, bytes]] = {}
    for record in _changelog_records(settings):
        store = record.topic.removeprefix(f"{settings.app_id}-").removesuffix("-changelog")
        table = wanted.setdefault((store, record.partition), {})
        if record.value is None:
            table.pop(record.key, None)
        else:
            table[record.key] = record.value
    for (store, partition), table in wanted.items():
        local = PartitionStore(state_dir / store / str(partition), specs[store].ttl_s,
                               record_changelog[store])
        try:
            assert local.discarded is None
            held = dict(local.raw_items())
        finally:
            local.close()
        assert held == table, f"{store}[{partition}] differs from its changelog"


def test_a_restart_restores_only_what_was_written_after_the_checkpoint(
    kafka_env, workers, tmp_path
):
    env = _env(kafka_env)
    settings = settings_from(env)
    flow = Flow(settings)

    first = workers.start("a", **env)
    expected = _pay(flow, 0, 60)
    _credits_until(settings, expected, first)
    first.stop()
    before = len(_changelog_records(settings))

    # Another worker (its own, empty state) moves the changelogs on while "a" is away.
    other = workers.start("b", **env)
    expected |= _pay(flow, 60, 60)
    _credits_until(settings, expected, other)
    other.stop()
    after = len(_changelog_records(settings))
    assert after > before

    again = workers.start("a", **env)
    restored, full = _restored(again)
    assert (restored, full) == (after - before, "-")
    wait_for_http(again, "/metrics")
    _, body = http("GET", f"http://127.0.0.1:{again.web_port}/metrics")
    [gauge] = [line for line in body.decode().splitlines()
               if line.startswith("topup_restore_records ")]
    assert float(gauge.split()[1]) == after - before

    # The restored state is right: duplicates of every payment credit nothing again.
    expected |= _pay(flow, 0, 120) | _pay(flow, 120, 1)
    counts = _credits_until(settings, expected, again)
    assert set(counts) == expected and max(counts.values()) == 1
    again.stop()
    _assert_stores_hold_the_changelogs(settings, tmp_path / "state-a")


@pytest.mark.parametrize("point", [crash_points.AFTER_COMMIT, crash_points.DURING_LOCAL_WRITE])
def test_a_kill_around_the_local_write_ends_with_exactly_the_committed_state(
    kafka_env, workers, tmp_path, point
):
    env = _env(kafka_env)
    settings = settings_from(env)
    flow = Flow(settings)

    doomed = workers.start("a", **env, TOPUP_TEST_KILL_AT=point,
                           TOPUP_TEST_KILL_AFTER_BATCHES="3")
    expected = _pay(flow, 0, 150, twice=True)
    doomed.process.wait(timeout=180)
    assert doomed.process.returncode == -9, doomed.log()

    again = workers.start("a", **env)
    restored, full = _restored(again)
    # The killed batch committed but never reached the store: its tail is replayed.
    assert restored > 0 and full == "-"
    expected |= _pay(flow, 0, 150) | _pay(flow, 150, 1)
    counts = _credits_until(settings, expected, again)
    assert set(counts) == expected and max(counts.values()) == 1
    again.stop()
    _assert_stores_hold_the_changelogs(settings, tmp_path / "state-a")


def test_a_corrupt_or_foreign_store_is_detected_and_fully_restored(kafka_env, workers, tmp_path):
    env = _env(kafka_env)
    settings = settings_from(env)
    flow = Flow(settings)

    first = workers.start("a", **env)
    expected = _pay(flow, 0, 60)
    _credits_until(settings, expected, first)
    first.stop()

    state = tmp_path / "state-a"
    corrupt, foreign_of = sorted(p.name for p in state.iterdir() if (p / "1").is_dir())[:2]
    (state / corrupt / "1" / "CURRENT").write_bytes(b"\x00not a manifest name\n")
    shutil.rmtree(state / foreign_of / "0")
    shutil.copytree(state / corrupt / "0", state / foreign_of / "0")

    again = workers.start("a", **env)
    _, full = _restored(again)
    assert f"-{corrupt}-changelog[1] (store failed to open" in full
    assert f"-{foreign_of}-changelog[0] (foreign store: it mirrors " in full
    expected |= _pay(flow, 0, 60) | _pay(flow, 60, 1)
    counts = _credits_until(settings, expected, again)
    assert set(counts) == expected and max(counts.values()) == 1
    again.stop()
    _assert_stores_hold_the_changelogs(settings, state)
