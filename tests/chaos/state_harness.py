"""Chaos helpers of the state work (issue 16): worker slots that keep their state dir
across kills, and the consumer group's lag."""

from __future__ import annotations

import time

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, TopicPartition
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


def group_lag(settings: Settings) -> dict[tuple[str, int], int]:
    """Per partition the group has committed: last stable offset minus committed offset.
    A transactional input's last offset may be a commit marker, which no consumer ever
    commits past, so 1 there means caught up too."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    request = [ConsumerGroupTopicPartitions(settings.app_id)]
    result = admin.list_consumer_group_offsets(request)[settings.app_id].result()
    committed = {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}
    if not committed:
        return {}
    ends = admin.list_offsets(
        {TopicPartition(t, p): OffsetSpec.latest() for t, p in committed},
        isolation_level=IsolationLevel.READ_COMMITTED,
    )
    return {(tp.topic, tp.partition): f.result().offset - committed[(tp.topic, tp.partition)]
            for tp, f in ends.items()}
