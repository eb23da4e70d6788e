"""Issue 16: changelogs carry min.insync.replicas, and a replication factor the cluster
cannot hold stops the worker at start with a clear error."""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from tests.kafka_harness import settings_from


def test_a_replication_factor_above_the_brokers_is_refused_at_start(kafka_env, workers):
    worker = workers.start("a", **{**kafka_env, "TOPUP_REPLICATION_FACTOR": "2"})
    assert worker.process.wait(timeout=120) == 2
    assert "TOPUP_REPLICATION_FACTOR is 2 but the cluster has only 1 broker" in worker.log()


def test_changelogs_are_created_with_min_insync_replicas(kafka_env, workers):
    settings = settings_from(kafka_env)
    worker = workers.start("a", **kafka_env)
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    deadline = time.monotonic() + 120
    changelogs: list[str] = []
    while not changelogs and time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.log()
        changelogs = [name for name in admin.list_topics(timeout=10).topics
                      if name.startswith(settings.app_id) and name.endswith("-changelog")]
        time.sleep(0.2)
    assert changelogs
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in changelogs]
    for future in admin.describe_configs(resources).values():
        entry = future.result()["min.insync.replicas"]
        assert (entry.value, entry.source) == ("1", 1)  # 1: a topic's own setting
