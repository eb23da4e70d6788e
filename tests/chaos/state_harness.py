"""Chaos helpers of the state work (issue 16): worker slots that keep their state dir
across kills, and the consumer group's lag."""

from __future__ import annotations

import time

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.config import Settings
from tests.kafka_harness import WorkerFactory, WorkerProcess


class Slots:
    """Named workers; a slot restarted after a kill reuses its state dir (its checkpoints)."""

    def __init__(self, factory: WorkerFactory, env: dict[str, str], names: list[str]):
        self.factory, self.env = factory, env
        self.running: dict[str, WorkerProcess] = {}
        for name in names:
            self.start(name)

    def start(self, name: str) -> WorkerProcess:
        self.running[name] = self.factory.start(name, **self.env)
        return self.running[name]

    def wait_assigned(self, name: str, timeout_s: float) -> None:
        """Until the slot's worker logged an assignment (or the deadline: then go on)."""
        worker = self.running[name]
        deadline = time.monotonic() + timeout_s
        while "assigned" not in worker.log() and time.monotonic() < deadline:
            assert worker.process.poll() is None, worker.log()
            time.sleep(0.1)

    def kill(self, name: str) -> bool:
        """SIGKILLs the slot's worker; whether it had logged an assignment by then."""
        worker = self.running[name]
        assigned = "assigned" in worker.log()
        worker.kill()
        return assigned


def member_partitions(settings: Settings) -> list[dict[str, set[int]]]:
    """Per member of the group: the partition numbers it owns, by topic."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    group = admin.describe_consumer_groups([settings.app_id])[settings.app_id].result()
    owned = []
    for member in group.members:
        by_topic: dict[str, set[int]] = {}
        for tp in member.assignment.topic_partitions:
            by_topic.setdefault(tp.topic, set()).add(tp.partition)
        owned.append(by_topic)
    return owned


def unprocessed(settings: Settings, timeout_s: float = 30.0) -> dict[tuple[str, int], int]:
    """Per partition the group has committed: the committed records between its committed
    offset and the last stable offset, i.e. what it has yet to process. Counted by
    reading, not by subtracting offsets: commit markers and aborted records (a killed
    worker's transactions) occupy offsets that no consumer ever processes."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    request = [ConsumerGroupTopicPartitions(settings.app_id)]
    result = admin.list_consumer_group_offsets(request)[settings.app_id].result()
    committed = {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}
    if not committed:
        return {}
    futures = admin.list_offsets(
        {TopicPartition(t, p): OffsetSpec.latest() for t, p in committed},
        isolation_level=IsolationLevel.READ_COMMITTED,
    )
    ends = {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
    counts = dict.fromkeys(committed, 0)
    behind = {tp: end for tp, end in ends.items() if committed[tp] < end}
    if not behind:
        return counts
    reader = Consumer({"bootstrap.servers": settings.bootstrap_servers,
                       "group.id": f"lag-reader-{settings.app_id}",
                       "isolation.level": "read_committed", "enable.auto.commit": False,
                       "fetch.wait.max.ms": 50})
    try:
        reader.assign([TopicPartition(t, p, committed[(t, p)]) for t, p in behind])
        deadline = time.monotonic() + timeout_s
        while behind and time.monotonic() < deadline:
            for message in reader.consume(1000, 0.2):
                if message.error() is None:
                    counts[(message.topic(), message.partition())] += 1
            for tp in reader.position([TopicPartition(t, p) for t, p in behind]):
                if tp.offset >= behind[(tp.topic, tp.partition)]:
                    del behind[(tp.topic, tp.partition)]
        assert not behind, f"could not read to the end of {sorted(behind)}"
    finally:
        reader.close()
    return counts


def offsets_report(settings: Settings) -> str:
    """For a failed run: every partition the group has committed on, and every changelog,
    with its committed offset, last stable offset and high watermark. A last stable
    offset held below the high watermark is a transaction still open there."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    request = [ConsumerGroupTopicPartitions(settings.app_id)]
    result = admin.list_consumer_group_offsets(request)[settings.app_id].result()
    committed = {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}
    described = admin.list_topics(timeout=30).topics
    partitions = set(committed) | {(t, p) for t, meta in described.items()
                                   if t.startswith(settings.app_id) for p in meta.partitions}

    def ends(isolation: IsolationLevel) -> dict[tuple[str, int], int]:
        futures = admin.list_offsets({TopicPartition(t, p): OffsetSpec.latest()
                                      for t, p in partitions}, isolation_level=isolation)
        return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

    stable, high = ends(IsolationLevel.READ_COMMITTED), ends(IsolationLevel.READ_UNCOMMITTED)
    lines = [f"{t}[{p}] committed={committed.get((t, p), '-')} lso={stable[(t, p)]} "
             f"hwm={high[(t, p)]}{'  <- open transaction' if stable[(t, p)] < high[(t, p)] else ''}"
             for t, p in sorted(partitions)]
    return "\n".join(lines)
