"""Why a wait for stable committed offsets lasts: asked of the group coordinator through a
fresh AdminClient. The consumer's own `committed()` retries UNSTABLE_OFFSET_COMMIT inside
librdkafka and only ever says "timed out", which hides whether a transaction still holds
offsets (keep waiting: KIP-447) or the consumer's request is what is stuck (a fresh
consumer helps)."""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition

from streams.runtime.config import RuntimeConfig
from streams.runtime.kafka_admin import admin_client


def unstable_partitions(
    config: RuntimeConfig, partitions: list[TopicPartition], timeout_s: float
) -> list[TopicPartition] | None:
    """The partitions whose committed offset the coordinator reports unstable (a
    transactional offset commit still pending); None when the coordinator gave no answer
    (unreachable, loading, another error): then nothing is known."""
    group = config.app_id
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(tp.topic, tp.partition) for tp in partitions])
    try:
        futures = admin_client(config.client).list_consumer_group_offsets(
            [request], require_stable=True, request_timeout=timeout_s)
        answer = futures[group].result(timeout=timeout_s + 5)
    except (KafkaException, TimeoutError):
        return None
    unstable = []
    for tp in answer.topic_partitions or []:
        if tp.error is None:
            continue
        if tp.error.code() != KafkaError.UNSTABLE_OFFSET_COMMIT:
            return None
        unstable.append(tp)
    return unstable
