"""A store whose checkpoint lies past its changelog's last stable offset, behind a
transaction still open (a hanging one: seen after a single broker's restart), is kept as
it is. Replaying up to the last stable offset instead would take back writes the worker
applied after their commit."""

from __future__ import annotations

import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.runtime.restore import last_stable_offsets, restore
from streams.runtime.store import PartitionStore


def test_a_checkpoint_past_an_open_transaction_keeps_the_store(kafka_bootstrap, tmp_path: Path):
    changelog = f"restore-open-txn-{uuid.uuid4().hex[:8]}"
    client = {"bootstrap.servers": kafka_bootstrap}
    admin = AdminClient(client)
    admin.create_topics([NewTopic(changelog, 1, 1)])[changelog].result(timeout=30)

    def transactional(name: str) -> Producer:
        producer = Producer({**client, "transactional.id": f"{changelog}-{name}",
                             "transaction.timeout.ms": 300_000})
        producer.init_transactions(30)
        producer.begin_transaction()
        return producer

    hanging = transactional("hanging")
    hanging.produce(changelog, key=b"k", value=b"from the open transaction", partition=0)
    hanging.flush(30)
    committed = transactional("owner")
    committed.produce(changelog, key=b"k", value=b"v2", partition=0)
    committed.commit_transaction(30)
    # The owner applied its commit locally: checkpoint after its record and marker.
    store = PartitionStore(tmp_path / "store", None, changelog)
    store.write([(b"k", b"v2")], 3)
    assert last_stable_offsets(client, [(changelog, 0)]) == {(changelog, 0): 0}

    report = restore(client, f"{changelog}-restore", {(changelog, 0): store}, timeout_s=30)

    assert (store.discarded, store.checkpoint, report.full) == (None, 3, {})
    assert (report.records, report.ends) == (0, {(changelog, 0): 3})
    assert list(store.raw_items()) == [(b"k", b"v2")]
    hanging.abort_transaction(30)
