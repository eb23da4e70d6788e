"""Topic administration with confluent-kafka's AdminClient."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from streams.config import Settings
from streams.kafka_clients import client_config
from streams.topics import TOPICS, TopicSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicReport:
    name: str
    outcome: str  # created | exists | mismatch
    detail: str = ""


class KafkaUnreachable(RuntimeError):
    """The brokers could not be reached or refused us; the message says why (never a secret)."""


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


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
    settings: Settings, specs: tuple[TopicSpec, ...] = TOPICS, timeout_s: float = 30.0
) -> list[TopicReport]:
    """Create what is missing; report (never alter) what exists with other partition counts.
    A topic named twice is created once (librdkafka crashes on a request naming it twice)."""
    specs = tuple({spec.name: spec for spec in specs}.values())
    existing = _topic_names(settings, timeout_s)
    admin = admin_client(settings)
    reports: list[TopicReport] = []
    missing: list[NewTopic] = []
    for spec in specs:
        if spec.name in existing:
            partitions = len(existing[spec.name].partitions)
            if partitions != settings.partitions:
                detail = f"has {partitions} partitions, config says {settings.partitions}"
                reports.append(TopicReport(spec.name, "mismatch", detail))
            else:
                reports.append(TopicReport(spec.name, "exists"))
            continue
        missing.append(
            NewTopic(
                spec.name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                config=spec.config(settings.topic_retention_days),
            )
        )
    if missing:
        for name, future in admin.create_topics(missing, request_timeout=timeout_s).items():
            try:
                future.result()
                reports.append(TopicReport(name, "created"))
            except KafkaException as exc:
                # Another process may have created it between our listing and our request.
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise
                reports.append(TopicReport(name, "exists"))
    return sorted(reports, key=lambda r: r.name)


def delete_topics(settings: Settings, names: list[str], timeout_s: float = 30.0) -> None:
    admin = admin_client(settings)
    existing = admin.list_topics(timeout=timeout_s).topics
    doomed = [name for name in names if name in existing]
    if doomed:
        for future in admin.delete_topics(doomed, request_timeout=timeout_s).values():
            future.result()


def max_message_bytes(settings: Settings, names: list[str], timeout_s: float = 30.0,
                      attempts: int = 5) -> dict[str, int]:
    """Each topic's max.message.bytes (its own, or the broker default it inherits).

    A topic created a moment ago may not be describable yet: it is asked again a few
    times, then left out (the caller's default applies to it)."""
    admin = admin_client(settings)
    limits: dict[str, int] = {}
    wanted = list(dict.fromkeys(names))
    for attempt in range(attempts):
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in wanted]
        futures = admin.describe_configs(resources, request_timeout=timeout_s)
        for resource, future in futures.items():
            try:
                limits[resource.name] = int(future.result()["max.message.bytes"].value)
            except KafkaException:
                continue
        wanted = [name for name in wanted if name not in limits]
        if not wanted:
            break
        time.sleep(0.5 * (attempt + 1))
    if wanted:
        log.warning("max.message.bytes unknown for %d topics (%s...): the producer's own "
                    "limit applies to them", len(wanted), wanted[0])
    return limits
