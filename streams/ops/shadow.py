"""Shadow topics, `<topic>.shadow.<run-id>` (behaviour 10): where a backtest writes what the
stages would have written, beside the live topic and never into it.

One run, one topic, created here with the live topic's record type and a short retention:
a shadow is evidence for a decision about rules, read and then let go. Written in one
transaction, so a read_committed reader sees a run whole or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from streams import topics
from streams.admin import create_topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.kafka_clients import producer

SHADOW_RETENTION_DAYS = 7


def shadow_topic(topic: str, run_id: str) -> str:
    if topic not in topics.BY_NAME or not run_id:
        raise ValueError(f"no shadow of {topic!r} for run {run_id!r}")
    return f"{topic}.shadow.{run_id}"


def write_shadow(
    settings: Settings, topic: str, run_id: str, records: Iterable[tuple[str, dict[str, Any]]]
) -> tuple[str, int]:
    """Create `<topic>.shadow.<run_id>` and write the (key, record) pairs to it, encoded as
    the live topic's records are; the shadow's name and how many were written."""
    name = shadow_topic(topic, run_id)
    record_type = topics.BY_NAME[topic].record
    assert record_type is not None, f"{topic} carries no Avro record"
    create_topics(settings, (topics.TopicSpec(name, record_type,
                                              retention_days=SHADOW_RETENTION_DAYS),))
    catalog = default_catalog()
    client = producer(settings, acks="all",
                      **{"transactional.id": f"{settings.app_id}-shadow-{uuid.uuid4()}"})
    client.init_transactions(30)
    client.begin_transaction()
    written = 0
    for key, record in records:
        client.produce(name, key=key.encode(), value=catalog.encode(record_type, record))
        written += 1
        if written % 10_000 == 0:
            client.poll(0)
    client.commit_transaction(60)
    return name, written
