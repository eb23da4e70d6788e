"""Kafka client configuration for everything the project builds, and confluent-kafka
producers and consumers for tools, tests and the demo.

Every client (worker producer and consumer, restore consumer, admin client, the web
producer, tools) starts from `client_config(settings)`, so TLS and SASL settings reach all
of them. The returned dict holds secrets: never log it.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.config import Settings
from streams.partitioning import PARTITIONER as PARTITIONER


def client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings every client starts from: the brokers and how to reach them."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol,
    }
    optional = {
        "sasl.mechanism": settings.kafka_sasl_mechanism,
        "sasl.username": settings.kafka_sasl_username,
        "sasl.password": settings.kafka_sasl_password,
        "ssl.ca.location": settings.kafka_ssl_ca_location,
        "ssl.certificate.location": settings.kafka_ssl_certificate_location,
        "ssl.key.location": settings.kafka_ssl_key_location,
        "ssl.key.password": settings.kafka_ssl_key_password,
    }
    config.update({key: value for key, value in optional.items() if value is not None})
    return config


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """The same settings as `client_config`, in aiokafka's keyword arguments."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism is not None:
        config.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                      sasl_plain_username=settings.kafka_sasl_username,
                      sasl_plain_password=settings.kafka_sasl_password)
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location)
        if settings.kafka_ssl_certificate_location is not None:
            context.load_cert_chain(settings.kafka_ssl_certificate_location,
                                    settings.kafka_ssl_key_location,
                                    settings.kafka_ssl_key_password)
        config["ssl_context"] = context
    return config


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
    config: dict[str, Any] = {
        **client_config(settings),
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
            **client_config(settings),
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
