from __future__ import annotations

from confluent_kafka.admin import ConfigResource

from streams import topics
from streams.admin import admin_client, create_topics
from tests.kafka_harness import settings_from


def test_topics_create_is_idempotent_with_the_contract_settings(kafka_env):
    settings = settings_from(kafka_env)
    # kafka_env already created them once; a second run changes nothing.
    reports = create_topics(settings)
    assert {r.name for r in reports} == {spec.name for spec in topics.TOPICS}
    assert {r.outcome for r in reports} == {"exists"}

    admin = admin_client(settings)
    metadata = admin.list_topics(timeout=10).topics
    assert all(len(metadata[spec.name].partitions) == 4 for spec in topics.TOPICS)

    resources = [ConfigResource(ConfigResource.Type.TOPIC, spec.name) for spec in topics.TOPICS]
    configs = {
        resource.name: future.result()
        for resource, future in admin.describe_configs(resources).items()
    }
    policy = {name: config["cleanup.policy"].value for name, config in configs.items()}
    assert policy[topics.ORDER_STATUS] == "compact"
    assert policy[topics.CONTROL] == "compact"
    assert policy[topics.ORDERS] == "delete"
    assert configs[topics.CREDITS]["retention.ms"].value == "-1"
    assert configs[topics.ORDERS]["retention.ms"].value == str(7 * topics.DAY_MS)


def test_a_topic_named_twice_is_created_once(kafka_env):
    # Two stages may share a store, so its changelog can be asked for twice; librdkafka
    # would crash the process on a CreateTopics request naming a topic twice.
    settings = settings_from(kafka_env)
    spec = topics.TopicSpec("topup.test.named-twice", None, compacted=True)
    reports = create_topics(settings, (spec, spec))
    assert [(r.name, r.outcome) for r in reports] == [("topup.test.named-twice", "created")]
