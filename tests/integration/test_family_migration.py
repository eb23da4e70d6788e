"""An upgrade that puts stores in a family: their state, in the changelogs an older release
wrote, reaches the family's changelog and the worker's stores, and nothing before that
lets a worker start without it."""

from __future__ import annotations

import json
import time

from confluent_kafka.admin import AdminClient, NewTopic

from streams import wire
from streams.kafka_clients import producer, read_committed
from streams.partitioning import partition_for
from streams.runtime.store import PartitionStore, StoreSpec, StoreView
from streams.stages.balances import BALANCES
from tests.integration.flow import Flow
from tests.integration.store_checks import (
    assert_stores_hold_the_changelogs,
    credits_until,
    pay,
    state_env,
)
from tests.integration.test_operators_rebuild import cli
from tests.kafka_harness import settings_from


def test_an_upgrade_copies_a_stores_own_changelog_into_its_familys(kafka_env, workers,
                                                                   tmp_path):
    env = state_env(kafka_env)
    settings = settings_from(env)
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    # The balances changelog as an older release kept it: its own topic, unprefixed keys,
    # each on its key's partition. One balance changed, one account removed.
    old = StoreSpec(BALANCES.name).changelog(settings.app_id)
    [created] = admin.create_topics([NewTopic(old, settings.partitions, 1, config={
        "cleanup.policy": "compact"})]).values()
    created.result()
    writes = [(f"acct-mig-{i}", {"USD": 100 * i}) for i in range(6)]
    writes += [("acct-mig-0", {"USD": 7}), ("acct-mig-5", None)]
    writer = producer(settings)
    for account, balance in writes:
        writer.produce(old, None if balance is None else wire.dumps(balance), account.encode(),
                       partition_for(account.encode(), settings.partitions))
    assert writer.flush(30) == 0
    expected = {f"acct-mig-{i}": {"USD": 100 * i} for i in range(1, 5)} | {
        "acct-mig-0": {"USD": 7}}

    refused = workers.start("a", **env)
    assert refused.process.wait(timeout=90) == 2, refused.log()
    assert f"the changelogs {old} still hold state" in refused.log()
    assert "topup-guard migrate-state" in refused.log()

    done = cli(env, "migrate-state", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["copied"] == {old: len(writes)}
    assert old not in admin.list_topics(timeout=30).topics
    family = BALANCES.changelog(settings.app_id)
    copied: dict[str, dict | None] = {}
    for record in read_committed(settings, [family], until=time.monotonic() + 30,
                                 idle_s=1.0, min_records=len(writes)):
        if (account := BALANCES.own_key(record.key)) is not None:
            assert record.partition == partition_for(account.encode(), settings.partitions)
            copied[account] = None if record.value is None else wire.loads(record.value)
    assert {a: b for a, b in copied.items() if b is not None} == expected
    again = cli(env, "migrate-state")
    assert again.returncode == 0 and "nothing to migrate" in again.stdout

    # The worker starts now, works, and its stores hold the migrated balances.
    worker = workers.start("a", **env)
    credits_until(settings, pay(Flow(settings), 0, 1), worker)
    worker.stop()
    assert_stores_hold_the_changelogs(settings, tmp_path / "state-a")
    for account, balance in expected.items():
        partition = partition_for(account.encode(), settings.partitions)
        store = PartitionStore(BALANCES.path(tmp_path / "state-a", partition), None, family)
        try:
            assert StoreView(store, BALANCES.key_prefix).get(account) == balance
        finally:
            store.close()
