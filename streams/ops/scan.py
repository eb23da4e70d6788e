"""Bounded topic scans: read topics from their earliest offsets up to the end offsets they
had when the scan began, read_committed, with progress.

Operators' queries read the topics themselves rather than an index the workers keep: the
topics are the record of truth (an index could lag or disagree), nothing new has to be
kept bounded in the workers, and the scan ends at a known point however busy the topics are.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.config import Settings
from streams.kafka_clients import ConsumedRecord, client_config

_TRANSIENT = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
              KafkaError.UNKNOWN_TOPIC_OR_PART}


@dataclass(frozen=True)
class Progress:
    records: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0


ProgressHook = Callable[[Progress], None]


def end_offsets(settings: Settings, topic_names: Iterable[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> high watermark, for every partition of the topics that exist."""
    consumer = _consumer(settings)
    try:
        return _ends(consumer, topic_names)
    finally:
        consumer.close()


def scan(
    settings: Settings,
    topic_names: Iterable[str],
    *,
    progress: ProgressHook | None = None,
    every_s: float = 2.0,
    timeout_s: float = 120.0,
) -> list[ConsumedRecord]:
    """Every committed record of the topics, earliest first per partition, up to the end
    offsets taken at the start. Raises TimeoutError if the end is not reached in time."""
    consumer = _consumer(settings)
    started = time.monotonic()
    try:
        ends = {tp: end for tp, end in _ends(consumer, topic_names).items() if end > 0}
        consumer.assign([TopicPartition(t, p, 0) for t, p in ends])
        records: list[ConsumedRecord] = []
        pending, last_report = set(ends), started
        while pending:
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"scan did not reach the end of {sorted(pending)}")
            message = consumer.poll(0.5)
            if progress and time.monotonic() - last_report >= every_s:
                last_report = time.monotonic()
                progress(Progress(len(records), last_report - started))
            if message is None:
                # Transaction markers take offsets but are never delivered: ask where we are.
                for tp in list(pending):
                    position = consumer.position([TopicPartition(*tp)])[0].offset
                    if position >= ends[tp]:
                        pending.discard(tp)
                continue
            tp = (message.topic(), message.partition())
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(tp)
                continue
            if message.offset() < ends[tp]:
                records.append(_consumed(message))
            if message.offset() + 1 >= ends[tp]:
                pending.discard(tp)
        if progress:
            progress(Progress(len(records), time.monotonic() - started))
        return records
    finally:
        consumer.close()


def _consumer(settings: Settings) -> Consumer:
    return Consumer({
        **client_config(settings),
        "group.id": f"topup-ops-{uuid.uuid4()}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        # An unreachable broker is reported once, as an error, not logged every 50 ms.
        "log_level": 2,
    })


def _ends(consumer: Consumer, topic_names: Iterable[str]) -> dict[tuple[str, int], int]:
    metadata = consumer.list_topics(timeout=10)
    ends: dict[tuple[str, int], int] = {}
    for name in topic_names:
        if name not in metadata.topics:
            continue
        for partition in metadata.topics[name].partitions:
            ends[(name, partition)] = _high_watermark(consumer, TopicPartition(name, partition))
    return ends


def _high_watermark(consumer: Consumer, tp: TopicPartition, patience_s: float = 20.0) -> int:
    # Just after topics are created or a broker restarts, leadership is still moving:
    # those errors are retriable, so wait for them a little rather than fail the command.
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
        except KafkaException as exc:
            error = exc.args[0]
            transient = error.retriable() or error.code() in _TRANSIENT
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _consumed(message: Message) -> ConsumedRecord:
    return ConsumedRecord(
        topic=message.topic(), partition=message.partition(), offset=message.offset(),
        key=message.key(), value=message.value(), headers=dict(message.headers() or []),
        timestamp_ms=message.timestamp()[1],
    )
