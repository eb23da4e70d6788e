"""Topic administration for the application's tools, from its settings: the Kafka
plumbing itself is the runtime's (streams/runtime/kafka_admin.py)."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from streams.config import Settings
from streams.kafka_clients import client_config
from streams.runtime import kafka_admin
from streams.runtime.kafka_admin import TopicReport as TopicReport
from streams.topics import TOPICS, TopicSpec

log = logging.getLogger(__name__)


class KafkaUnreachable(RuntimeError):
    """The brokers could not be reached or refused us; the message says why (never a secret)."""


def admin_client(settings: Settings) -> AdminClient:
    return kafka_admin.admin_client(client_config(settings))


def _topic_names(settings: Settings, timeout_s: float) -> dict:
    """The cluster's topics; a failure to connect or authenticate says so in one line."""
    errors: list[KafkaError] = []
    admin = AdminClient({**client_config(settings), "error_cb": errors.append})
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return admin.list_topics(timeout=max(0.1, min(2.0, deadline - time.monotonic()))).topics
        except KafkaException as exc:
            # librdkafka reports the cause (e.g. SASL authentication failed) to error_cb,
            # served by poll; the exception itself only says "broker transport failure".
            admin.poll(0.1)
            auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
            if auth or time.monotonic() >= deadline:
                cause = (auth or errors or [exc.args[0]])[-1]
                raise KafkaUnreachable(
                    f"cannot use Kafka at {settings.bootstrap_servers} "
                    f"(security protocol {settings.kafka_security_protocol}): {cause.str()}"
                ) from None


def ensure_reachable(settings: Settings, timeout_s: float = 30.0) -> None:
    """Raises KafkaUnreachable, naming the cause in one line (unreachable, refused
    credentials), when Kafka cannot be used: the first thing a worker checks."""
    _topic_names(settings, timeout_s)


def create_topics(
    settings: Settings, specs: tuple[TopicSpec[Any], ...] = TOPICS, timeout_s: float = 30.0
) -> list[TopicReport]:
    """Create what is missing; report (never alter) what exists with other partition counts.
    Unreachable Kafka raises KafkaUnreachable, naming the cause."""
    ensure_reachable(settings, timeout_s)
    return kafka_admin.create_topics(client_config(settings), specs, settings.partitions,
                                     settings.replication_factor,
                                     settings.topic_retention_days, timeout_s)


def delete_topics(settings: Settings, names: list[str], timeout_s: float = 30.0) -> None:
    admin = admin_client(settings)
    existing = admin.list_topics(timeout=timeout_s).topics
    doomed = [name for name in names if name in existing]
    if doomed:
        for future in admin.delete_topics(doomed, request_timeout=timeout_s).values():
            future.result()


def max_message_bytes(settings: Settings, names: list[str], timeout_s: float = 30.0
                      ) -> dict[str, int]:
    return kafka_admin.max_message_bytes(client_config(settings), names, timeout_s)
