"""The Python ceiling: a plain confluent-kafka transactional loop that only decodes and
re-encodes the same Avro records, committing offsets in its transactions."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer

from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings

OUT_TOPIC = "bench.ceiling.out"
RECORD_OF = {topics.ORDERS: "OrderEvent", topics.WEBHOOKS: "WebhookDelivery"}


def run_ceiling(settings: Settings, expected: int, timeout_s: float = 600) -> float:
    """Seconds from the first record to the commit of the last one."""
    catalog = default_catalog()
    group = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers, "group.id": group,
        "isolation.level": "read_committed", "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    producer = Producer({
        "bootstrap.servers": settings.bootstrap_servers,
        "transactional.id": group, "linger.ms": 5,
    })
    producer.init_transactions()
    consumer.subscribe(list(RECORD_OF))
    done, started, deadline = 0, None, time.monotonic() + timeout_s
    producer.begin_transaction()
    try:
        while done < expected and time.monotonic() < deadline:
            batch = consumer.consume(1_000, timeout=0.5)
            if not batch:
                continue
            started = started or time.monotonic()
            for message in batch:
                if message.error():
                    continue
                record = catalog.decode(RECORD_OF[message.topic()], message.value())
                producer.produce(OUT_TOPIC, key=message.key(),
                                 value=catalog.encode(RECORD_OF[message.topic()], record))
                done += 1
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()), consumer.consumer_group_metadata()
            )
            producer.commit_transaction()
            producer.begin_transaction()
        producer.abort_transaction()
    finally:
        consumer.close()
    if done < expected or started is None:
        raise RuntimeError(f"ceiling loop read {done} of {expected} records")
    return time.monotonic() - started
