"""The edge between the application's settings and the runtime: what a worker is told."""

from __future__ import annotations

from streams import topics
from streams.config import Settings
from streams.kafka_clients import client_config
from streams.runtime.config import RuntimeConfig


def runtime_config(settings: Settings) -> RuntimeConfig:
    return RuntimeConfig(
        app_id=settings.app_id,
        client=client_config(settings),
        topics=topics.TOPICS,
        dead_letter_topic=topics.DLQ,
        alert_topic=topics.ALERTS,
        partitions=settings.partitions,
        replication_factor=settings.replication_factor,
        topic_retention_days=settings.topic_retention_days,
        state_dir=settings.state_dir,
        batch_max_records=settings.batch_max_records,
        batch_target_ms=settings.batch_target_ms,
        fetch_wait_max_ms=settings.fetch_wait_max_ms,
        idle_advance_s=settings.idle_advance_s,
        session_timeout_s=settings.session_timeout_s,
        stall_threshold_s=settings.stall_threshold_s,
        state_cleanup_delay_s=settings.state_cleanup_delay_s,
        transaction_timeout_s=settings.transaction_timeout_s,
        txn_call_timeout_s=settings.txn_call_timeout_s,
        standby_replicas=settings.standby_replicas,
        group_protocol=settings.group_protocol,
    )
