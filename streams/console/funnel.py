"""The funnel over the last hour, counted from the topics in buckets of record time.

Record (broker) time, not event time: the question is "what has the system done in the
last hour", and a callback replayed today for last week's order is today's work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams import topics
from streams.codecs import DecodeError, default_catalog
from streams.config import Settings
from streams.kafka_clients import ConsumedRecord
from streams.ops.scan import scan

FUNNEL_TOPICS = (topics.ORDERS, topics.ORDER_STATUS, topics.CREDITS, topics.DLQ,
                 topics.RECON_BREAKS)
SERIES = ("orders", "confirmed", "credits", "holds", "dead letters", "breaks")


@dataclass(frozen=True)
class Funnel:
    start_ms: int
    bucket_ms: int
    counts: dict[str, list[int]]  # series -> count per bucket, oldest first

    @property
    def totals(self) -> dict[str, int]:
        return {name: sum(values) for name, values in self.counts.items()}

    @property
    def peak(self) -> int:
        return max((max(values) for values in self.counts.values()), default=0)


def _series_of(record: ConsumedRecord) -> str | None:
    catalog = default_catalog()
    if record.topic == topics.DLQ:
        return "dead letters"
    if record.topic == topics.RECON_BREAKS:
        return "breaks"
    if record.topic == topics.CREDITS:
        return "credits"
    if record.value is None:
        return None
    try:
        if record.topic == topics.ORDERS:
            created = catalog.decode("OrderEvent", record.value)["type"] == "CREATED"
            return "orders" if created else None
        status = catalog.decode("OrderStatus", record.value)["status"]
    except DecodeError:
        return None  # bad bytes are the dead-letter series' business
    return {"PAYMENT_CONFIRMED": "confirmed", "ON_HOLD": "holds"}.get(status)


def count_funnel(records: Iterable[ConsumedRecord], now_ms: int, window_ms: int = 3_600_000,
                 buckets: int = 12) -> Funnel:
    bucket_ms = window_ms // buckets
    start = now_ms - window_ms
    counts = {name: [0] * buckets for name in SERIES}
    for record in records:
        index = (record.timestamp_ms - start) // bucket_ms
        if 0 <= index < buckets and (series := _series_of(record)) is not None:
            counts[series][index] += 1
    return Funnel(start, bucket_ms, counts)


def last_hour(settings: Settings, now_ms: int) -> Funnel:
    return count_funnel(scan(settings, FUNNEL_TOPICS), now_ms)
