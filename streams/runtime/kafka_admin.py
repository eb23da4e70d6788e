"""The topic administration the runtime itself needs (its internal topics and changelogs,
the topics' size limits), with confluent-kafka's AdminClient. The application's tools
(`topup-guard topics create`) reach it through streams/admin.py."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from streams.runtime.topic_spec import TopicSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicReport:
    name: str
    outcome: str  # created | exists | mismatch
    detail: str = ""


def admin_client(client: Mapping[str, Any]) -> AdminClient:
    return AdminClient(dict(client))


def create_topics(
    client: Mapping[str, Any],
    specs: tuple[TopicSpec[Any], ...],
    partitions: int,
    replication_factor: int,
    default_retention_days: int,
    timeout_s: float = 30.0,
) -> list[TopicReport]:
    """Create what is missing; report (never alter) what exists with other partition counts.
    A topic named twice is created once (librdkafka crashes on a request naming it twice)."""
    specs = tuple({spec.name: spec for spec in specs}.values())
    admin = admin_client(client)
    existing = admin.list_topics(timeout=timeout_s).topics
    reports: list[TopicReport] = []
    missing: list[NewTopic] = []
    for spec in specs:
        if spec.name in existing:
            found = len(existing[spec.name].partitions)
            if found != partitions:
                detail = f"has {found} partitions, config says {partitions}"
                reports.append(TopicReport(spec.name, "mismatch", detail))
            else:
                reports.append(TopicReport(spec.name, "exists"))
            continue
        missing.append(
            NewTopic(
                spec.name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                config=spec.config(default_retention_days),
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


def max_message_bytes(client: Mapping[str, Any], names: list[str], timeout_s: float = 30.0,
                      attempts: int = 5) -> dict[str, int]:
    """Each topic's max.message.bytes (its own, or the broker default it inherits).

    A topic created a moment ago may not be describable yet: it is asked again a few
    times, then left out (the caller's default applies to it)."""
    admin = admin_client(client)
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
