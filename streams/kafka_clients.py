"""confluent-kafka producers and consumers for tools, tests and the demo (not the agents)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.config import Settings

# librdkafka's default partitioner hashes with CRC32; aiokafka and the Java
# clients use murmur2. Producers feeding a co-partitioned topology must agree with them.
PARTITIONER = "murmur2_random"


@dataclass(frozen=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int


def producer(settings: Settings, **extra: str | int) -> Producer:
    config: dict[str, str | int] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "partitioner": PARTITIONER,
        "enable.idempotence": True,
        "linger.ms": 5,
    }
    config.update(extra)
    return Producer(config)


def read_committed(
    settings: Settings,
    topic_names: Iterable[str],
    *,
    until: float,
    idle_s: float = 2.0,
    min_records: int = 0,
) -> list[ConsumedRecord]:
    """Read the topics from the beginning with read_committed until nothing new arrives
    for `idle_s` after at least `min_records` were read, or the `until` deadline passes."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"topup-reader-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        assignment = []
        metadata = consumer.list_topics(timeout=10)
        for name in topic_names:
            if name in metadata.topics:
                for partition in metadata.topics[name].partitions:
                    assignment.append(TopicPartition(name, partition, 0))
        consumer.assign(assignment)
        records: list[ConsumedRecord] = []
        last_new = time.monotonic()
        while time.monotonic() < until:
            message = consumer.poll(0.2)
            if message is None:
                if len(records) >= min_records and time.monotonic() - last_new > idle_s:
                    break
                continue
            if message.error():
                continue
            last_new = time.monotonic()
            records.append(
                ConsumedRecord(
                    topic=message.topic(),
                    partition=message.partition(),
                    offset=message.offset(),
                    key=message.key(),
                    value=message.value(),
                    headers=dict(message.headers() or []),
                    timestamp_ms=message.timestamp()[1],
                )
            )
        return records
    finally:
        consumer.close()
