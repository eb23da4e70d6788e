"""What the checkpointed-state and standby tests share: their worker environment, paid
orders and the credits they wait for, and the check that local stores hold exactly their
changelogs' committed state."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.domain.common.ids import entry_id
from streams.kafka_clients import read_committed
from streams.metrics import Metrics
from streams.runtime.store import PartitionStore, families
from streams.topology import all_stages
from tests.builders import NOW_MS, order_event, payment_event
from tests.integration.crash_workload import NEVER_FIRES
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import WorkerProcess, decode_all, read_until

RESTORED = re.compile(r"restored \d+ store partitions \((\d+) records\).*full: (.*)$", re.M)


def state_env(kafka_env: dict[str, str]) -> dict[str, str]:
    return {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS),
            "TOPUP_SESSION_TIMEOUT_S": "6", "TOPUP_RISK_RULES": str(NEVER_FIRES)}


def pay(flow: Flow, first: int, count: int, twice: bool = False) -> set[str]:
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


def credits_until(settings: Settings, expected: set[str], worker: WorkerProcess) -> Counter:
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


def changelog_records(settings: Settings) -> list:
    return read_committed(settings, _changelogs(settings),
                          until=time.monotonic() + 60, idle_s=2.0)


def assert_stores_hold_the_changelogs(settings: Settings, state_dir: Path) -> None:
    """Every local store partition holds exactly its changelog's committed state."""
    catalog = default_catalog()
    # What is on disk: a family's stores share one partition store and changelog.
    specs = families(spec for stage in all_stages(settings, catalog, Metrics())
                     for spec in stage.stores)
    record_changelog = {name: spec.changelog(settings.app_id) for name, spec in specs.items()}
    wanted: dict[tuple[str, int], dict[bytes, bytes]] = {}
    for record in changelog_records(settings):
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
