"""Bringing assigned store partitions up to the last stable offset of their changelogs.

A store with a usable checkpoint replays only the changelog's tail after it; any other is
emptied and replayed from the changelog's start, and the log says why. Each applied slice
is written with its checkpoint in one write batch, so a restore killed half way resumes
where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.runtime.store import PartitionStore

log = logging.getLogger(__name__)

Changelog = tuple[str, int]

LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
EARLIEST: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
COMMITTED, UNCOMMITTED = IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED

# A store partition restored with at least this many records is flushed after the
# restore, so a kill -9 later does not replay them from RocksDB's write-ahead log.
FLUSH_AFTER_RECORDS = 10_000


@dataclass
class RestoreReport:
    records: int = 0
    # Where each store partition's restore started: its checkpoint, or 0 for a full one.
    started_at: dict[Changelog, int] = field(default_factory=dict)
    full: dict[Changelog, str] = field(default_factory=dict)
    # The last stable offset each store partition was restored up to.
    ends: dict[Changelog, int] = field(default_factory=dict)

    def describe(self) -> str:
        tails = ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(self.started_at.items())
                          if (t, p) not in self.full)
        fulls = ", ".join(f"{t}[{p}] ({why})" for (t, p), why in sorted(self.full.items()))
        return f"from checkpoints: {tails or '-'}; full: {fulls or '-'}"


def _offsets(admin: AdminClient, partitions: list[Changelog],
             *asks: tuple[OffsetSpec, IsolationLevel]) -> list[dict[Changelog, int]]:
    """The offsets at each (spec, isolation), asked all at once: a restart waits for one
    round trip, not one per ask."""
    asked = [admin.list_offsets({TopicPartition(topic, p): spec for topic, p in partitions},
                                isolation_level=isolation)
             for spec, isolation in asks]
    return [{(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
            for futures in asked]


def last_stable_offsets(
    client: Mapping[str, Any], partitions: list[Changelog]
) -> dict[Changelog, int]:
    """Where committed data ends: records after it are in open or aborted transactions."""
    if not partitions:
        return {}
    return _offsets(AdminClient(dict(client)), partitions, (LATEST, COMMITTED))[0]


def restore_starts(
    targets: Mapping[Changelog, PartitionStore],
    earliest: Mapping[Changelog, int],
    ends: Mapping[Changelog, int],
    highs: Mapping[Changelog, int],
    report: RestoreReport,
) -> dict[Changelog, int]:
    """The offset each store's restore starts at, and in `report.ends` where it stops. A
    store whose checkpoint lies outside its changelog's range (topic recreated, retention
    passed) is emptied first. One whose checkpoint lies past the last stable offset but
    within the log is kept as it is: it holds writes this worker applied after their
    commit, behind a transaction still open before them (a hanging one, or a zombie's
    the stable offsets did not show); replaying up to the last stable offset instead would
    take committed writes back."""
    starts = {}
    for changelog, store in targets.items():
        low, end = earliest[changelog], ends[changelog]
        checkpoint = store.checkpoint
        if checkpoint is not None and end < checkpoint <= highs[changelog]:
            log.warning("%s[%d]: checkpoint %d past the last stable offset %d: a transaction "
                        "open before it; the local store is kept, nothing replayed",
                        *changelog, checkpoint, end)
            end = checkpoint
        elif checkpoint is not None and not low <= checkpoint <= end:
            store.discard(f"checkpoint {checkpoint} outside the changelog's range "
                          f"[{low}, {end}]")
            checkpoint = None
        if store.discarded is not None:
            report.full[changelog] = store.discarded
        starts[changelog] = low if checkpoint is None else checkpoint
        report.started_at[changelog] = starts[changelog]
        report.ends[changelog] = end
    return starts


def restore(
    client: Mapping[str, Any], group: str, targets: Mapping[Changelog, PartitionStore],
    timeout_s: float,
) -> RestoreReport:
    """Applies each store's changelog from its checkpoint (or the start) to the last
    stable offset. The entry point for whoever decides which stores to restore."""
    report = RestoreReport()
    if not targets:
        return report
    admin = AdminClient(dict(client))
    stable, earliest, highs = _offsets(admin, list(targets), (LATEST, COMMITTED),
                                       (EARLIEST, COMMITTED), (LATEST, UNCOMMITTED))
    starts = restore_starts(targets, earliest, stable, highs, report)
    ends = report.ends
    for changelog, reason in report.full.items():
        log.warning("full restore of %s[%d]: %s", *changelog, reason)
    behind = {tp: end for tp, end in ends.items() if starts[tp] < end}
    for tp in set(targets) - set(behind):
        if targets[tp].checkpoint != ends[tp]:
            targets[tp].write((), ends[tp])
    if not behind:
        return report
    consumer = Consumer({
        **client,
        "group.id": group,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": False,
        # A tail is often only commit markers: don't wait the default 500 ms to see so.
        "fetch.wait.max.ms": 50,
    })
    try:
        applied: dict[Changelog, int] = {}
        consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in behind])
        deadline = time.monotonic() + timeout_s
        while behind:
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelogs not restored within {timeout_s}s: {sorted(behind)}")
            batches: dict[Changelog, list[tuple[bytes, bytes | None]]] = {}
            next_offsets: dict[Changelog, int] = {}
            for msg in consumer.consume(10_000, 0.2):
                if msg.error():
                    raise RuntimeError(f"restore failed: {msg.error()}")
                # A consumed changelog record has all of these; its key is never null.
                where = (cast(str, msg.topic()), cast(int, msg.partition()))
                batches.setdefault(where, []).append((cast(bytes, msg.key()), msg.value()))
                next_offsets[where] = cast(int, msg.offset()) + 1
            for changelog, items in batches.items():
                targets[changelog].write(items, next_offsets[changelog])
                report.records += len(items)
                applied[changelog] = applied.get(changelog, 0) + len(items)
            # Positions move past transaction markers too, so they can reach the end even
            # when its last offsets are markers.
            for position in consumer.position([TopicPartition(t, p) for t, p in behind]):
                where = (position.topic, position.partition)
                if position.offset >= behind[where]:
                    targets[where].write((), position.offset)
                    del behind[where]
        for changelog, count in applied.items():
            if count >= FLUSH_AFTER_RECORDS:
                targets[changelog].flush()
    finally:
        consumer.close()
    return report
