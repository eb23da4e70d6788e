"""Replication of the changelog topics, chosen and checked before a worker starts.

A changelog is the only durable copy of a store: it gets the configured replication
factor and a `min.insync.replicas` that lets a commit survive one broker's loss without
stopping on it (RF 3 -> 2, the Kafka Streams recommendation; RF 1 or 2 -> 1).
"""

from __future__ import annotations

import logging

from confluent_kafka.admin import ConfigResource, ResourceType

from streams.runtime.config import RuntimeConfig
from streams.runtime.kafka_admin import admin_client

log = logging.getLogger(__name__)

PRODUCTION_REPLICATION_FACTOR = 3


def min_insync_replicas(replication_factor: int) -> int:
    return max(1, replication_factor - 1)


class ReplicationRefused(ValueError):
    """The cluster cannot hold the configured replicas: the worker refuses to start."""


def changelog_overrides(config: RuntimeConfig) -> dict[str, str]:
    return {"min.insync.replicas": str(min_insync_replicas(config.replication_factor))}


def validate_replication(config: RuntimeConfig, changelogs: list[str], timeout_s: float = 30.0
                         ) -> None:
    """Fails at start when the cluster cannot hold the configured replicas; warns when the
    setting is below production strength or an existing changelog was made weaker."""
    admin = admin_client(config.client)
    wanted = config.replication_factor
    topics = admin.list_topics(timeout=timeout_s).topics
    # The brokers alive now, and those holding replicas: a worker (re)started while one
    # broker is away (a rolling restart) must not take the cluster for smaller than it is.
    brokers = {node.id for node in admin.describe_cluster(request_timeout=timeout_s).result().nodes}
    brokers |= {replica for topic in topics.values() for partition in topic.partitions.values()
                for replica in partition.replicas}
    if wanted > len(brokers):
        raise ReplicationRefused(f"TOPUP_REPLICATION_FACTOR is {wanted} but the cluster has only "
                                 f"{len(brokers)} broker(s)")
    if wanted < PRODUCTION_REPLICATION_FACTOR:
        log.warning("TOPUP_REPLICATION_FACTOR=%d: changelogs survive no broker loss; use %d "
                    "in production", wanted, PRODUCTION_REPLICATION_FACTOR)
    existing = [name for name in changelogs if name in topics]
    if not existing:
        return
    configs = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, name) for name in existing])
    for resource, future in configs.items():
        name = resource.name
        replicas = len(topics[name].partitions[0].replicas)
        insync = int(future.result()["min.insync.replicas"].value)
        if replicas < wanted or insync < min_insync_replicas(wanted):
            log.warning("changelog %s has replication %d, min.insync.replicas %d; the "
                        "configuration asks for %d and %d", name, replicas, insync, wanted,
                        min_insync_replicas(wanted))
