"""Rebuilding assigned store partitions from their changelogs, up to the last stable offset."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.runtime.store import PartitionStore

log = logging.getLogger(__name__)

Changelog = tuple[str, int]


def last_stable_offsets(bootstrap: str, partitions: list[Changelog]) -> dict[Changelog, int]:
    """Where committed data ends: records after it are in open or aborted transactions."""
    if not partitions:
        return {}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = {TopicPartition(topic, p): OffsetSpec.latest() for topic, p in partitions}
    futures = admin.list_offsets(request, isolation_level=IsolationLevel.READ_COMMITTED)
    return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}


def restore(
    bootstrap: str, group: str, targets: Mapping[Changelog, PartitionStore], timeout_s: float,
    starts: Mapping[Changelog, int] | None = None,
) -> int:
    """Fill empty stores from the start of their changelogs (or from `starts`, to catch up
    a tail: re-applying a changelog range in order is idempotent); returns records applied."""
    starts = starts or {}
    ends = {tp: end for tp, end in last_stable_offsets(bootstrap, list(targets)).items()
            if end > starts.get(tp, 0)}
    if not ends:
        return 0
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": False,
    })
    applied = 0
    try:
        consumer.assign([TopicPartition(t, p, starts.get((t, p), OFFSET_BEGINNING))
                         for t, p in ends])
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelogs not restored within {timeout_s}s: {sorted(ends)}")
            batches: dict[Changelog, list[tuple[bytes, bytes | None]]] = {}
            for msg in consumer.consume(10_000, 0.2):
                if msg.error():
                    raise RuntimeError(f"restore failed: {msg.error()}")
                batches.setdefault((msg.topic(), msg.partition()), []).append(
                    (msg.key(), msg.value())
                )
            for changelog, items in batches.items():
                targets[changelog].write(items)
                applied += len(items)
            # Positions move past transaction markers too, so they can reach the end even
            # when its last offsets are markers.
            for tp in consumer.position([TopicPartition(t, p) for t, p in ends]):
                if tp.offset >= ends[(tp.topic, tp.partition)]:
                    del ends[(tp.topic, tp.partition)]
    finally:
        consumer.close()
    return applied
