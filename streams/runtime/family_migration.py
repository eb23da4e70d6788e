"""From one changelog per store to one per store family (streams.runtime.store).

A store that joins a family keeps its keys in the family's changelog, under its prefix,
from then on. The changelog it had before holds its whole state: a worker that started
on the family's changelog alone would restore nothing of it. So a worker refuses to
start while such a changelog exists (`refuse_unmigrated`), and `migrate` copies each into
its family's, record by record in changelog order, and then deletes it.

A copy killed half way is simply run again: it copies from the start, and the later
copy of a key lands after the earlier one, so the family's changelog ends with each key's
last value. Nothing else writes to it meanwhile: no worker starts before the old
changelogs are gone, and the operator stops the running ones first (checked).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.runtime.kafka_admin import admin_client
from streams.runtime.restore import last_stable_offsets
from streams.runtime.store import StoreSpec


class UnmigratedState(Exception):
    """A store's own changelog still exists beside its family's: the worker would lose it."""


def old_changelogs(app_id: str, specs: Iterable[StoreSpec]) -> dict[str, StoreSpec]:
    """The changelog each family member had as a store of its own, by name."""
    return {StoreSpec(spec.name).changelog(app_id): spec
            for spec in specs if spec.family is not None}


def unmigrated(client: Mapping[str, Any], app_id: str, specs: Iterable[StoreSpec],
               timeout_s: float = 30.0) -> dict[str, StoreSpec]:
    existing = admin_client(client).list_topics(timeout=timeout_s).topics
    return {name: spec for name, spec in old_changelogs(app_id, specs).items()
            if name in existing}


def refuse_unmigrated(client: Mapping[str, Any], app_id: str,
                      specs: Iterable[StoreSpec]) -> None:
    if found := unmigrated(client, app_id, specs):
        families = sorted({spec.changelog(app_id) for spec in found.values()})
        raise UnmigratedState(
            f"the changelogs {', '.join(sorted(found))} still hold state of stores now kept in "
            f"{', '.join(families)}. Stop every worker and run `topup-guard migrate-state`: "
            "it copies them there and deletes them. Starting before would lose that state.")


@dataclass
class MigrationReport:
    # Old changelog -> records copied into its family's.
    copied: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def migrate(client: Mapping[str, Any], app_id: str, specs: Iterable[StoreSpec],
            timeout_s: float = 600.0) -> MigrationReport:
    """Copies every old changelog still there into its family's and deletes it. The
    family's changelogs must exist (created as a worker creates them)."""
    started = time.monotonic()
    report = MigrationReport()
    found = unmigrated(client, app_id, specs)
    failures: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(f"{message.topic()}[{message.partition()}]: {error}")

    producer = Producer({**client, "enable.idempotence": True, "acks": "all"})
    for name, spec in sorted(found.items()):
        report.copied[name] = _copy(client, name, spec, app_id, producer, delivered,
                                    started + timeout_s)
    if failures:
        # The old changelogs stay: a run after the cause is mended copies them again.
        raise RuntimeError(f"{len(failures)} records not copied, first: {failures[0]}")
    if found:
        admin = admin_client(client)  # kept: a future dies with its client
        for future in admin.delete_topics(sorted(found)).values():
            future.result()
    report.seconds = time.monotonic() - started
    return report


def _copy(client: Mapping[str, Any], name: str, spec: StoreSpec, app_id: str,
          producer: Producer, delivered: Callable[[Any, Any], None], deadline: float) -> int:
    """Every committed record of `name` into the same partition of the family's
    changelog, its key under the store's prefix; acknowledged before this returns."""
    partitions = len(admin_client(client).list_topics(name, timeout=30).topics[name].partitions)
    ends = last_stable_offsets(client, [(name, p) for p in range(partitions)])
    behind = {tp: end for tp, end in ends.items() if end > 0}
    family, prefix = spec.changelog(app_id), spec.key_prefix.encode()
    consumer = Consumer({**client, "group.id": f"{app_id}-migrate-state",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest"})
    copied = 0
    try:
        consumer.assign([TopicPartition(t, p, 0) for t, p in behind])
        while behind:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not copied in time: {sorted(behind)} left")
            for msg in consumer.consume(10_000, 0.5):
                if msg.error():
                    raise RuntimeError(f"reading {name}: {msg.error()}")
                producer.produce(family, msg.value(), prefix + cast(bytes, msg.key()),
                                 cast(int, msg.partition()), delivered)
                producer.poll(0)
                copied += 1
            for position in consumer.position([TopicPartition(t, p) for t, p in behind]):
                if position.offset >= behind[(position.topic, position.partition)]:
                    del behind[(position.topic, position.partition)]
    finally:
        consumer.close()
    if (left := producer.flush(max(1.0, deadline - time.monotonic()))) != 0:
        raise TimeoutError(f"{left} records of {name} not acknowledged in time")
    return copied
