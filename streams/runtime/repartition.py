"""Keyed inputs: a record on the wrong partition for its key goes to the right one first.

Stages join co-partitioned topics by key, which holds only if every producer places a key
where the project's partitioner (murmur2, streams.partitioning) does. librdkafka clients
default to CRC32 (`consistent_random`), and a producer may also pick partitions itself. So
each record of a keyed input is checked before any stage sees it: a record already on its
key's partition is handled as it is (no extra cost); one that is not is forwarded, in the
batch's transaction, to the same partition number of the input's repartition topic, where
the stages of the input handle it exactly once, as if it had arrived on the input. Key,
value, headers (the correlation id) and timestamp are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from streams.codecs import SchemaCatalog
from streams.domain.common.outputs import AlertOut, Severity
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.runtime.context import Record, Send
from streams.runtime.own_topics import repartition_topic
from streams.runtime.stage import KeyOf

HOUR_MS = 60 * 60 * 1000
MISROUTED_ALERT = "INPUT_MISPARTITIONED"



def key_or_field(read_field: Callable[[bytes], str]) -> KeyOf:
    """A keyed input's key: the record's Kafka key, or for a null or empty one the field
    `read_field` finds in its value; None when neither is there (the stages then
    dead-letter the record where it is)."""

    def key_of(record: Record) -> bytes | None:
        if record.key:
            return record.key
        try:
            found = read_field(record.value or b"")
        except Exception:  # undecodable input is the stages' to refuse
            return None
        return found.encode() if found else None

    return key_of


class Repartitioner:
    def __init__(
        self,
        keyed: Mapping[str, KeyOf],
        partitions: Mapping[str, int],
        catalog: SchemaCatalog,
        metrics: Metrics,
        alert_topic: str,
    ) -> None:
        self._catalog = catalog
        self._alert_topic = alert_topic
        self._keyed = dict(keyed)
        self._partitions = dict(partitions)
        self._origin = {repartition_topic(topic): topic for topic in keyed}
        self._metrics = metrics
        # (topic, event-time hour) alerted in a committed batch, and in the open one.
        self._alerted: set[tuple[str, int]] = set()
        self._alerting: set[tuple[str, int]] = set()
        metrics.describe("topup_records_repartitioned_total",
                         "Keyed input records found on the wrong partition and forwarded")

    @property
    def repartition_topics(self) -> dict[str, str]:
        """Repartition topic -> the input it stands for."""
        return dict(self._origin)

    def route(self, record: Record) -> tuple[Record | None, list[Send]]:
        """The record to handle here (a forwarded one as its input's, None if it is
        forwarded instead), and what to send in the batch's transaction."""
        origin = self._origin.get(record.topic)
        if origin is not None:
            return replace(record, topic=origin), []
        key_of = self._keyed.get(record.topic)
        if key_of is None:
            return record, []
        key = key_of(record)
        if key is None:
            return record, []
        target = partition_for(key, self._partitions[record.topic])
        if target == record.partition:
            return record, []
        self._metrics.inc("topup_records_repartitioned_total", topic=record.topic)
        forward = Send(repartition_topic(record.topic), record.key, record.value,
                       record.headers or None, partition=target,
                       timestamp_ms=record.timestamp_ms)
        return None, [forward, *self._alert_once_an_hour(record, target)]

    def _alert_once_an_hour(self, record: Record, target: int) -> list[Send]:
        hour = record.timestamp_ms // HOUR_MS
        if (record.topic, hour) in self._alerted | self._alerting:
            return []
        self._alerting.add((record.topic, hour))
        self._metrics.inc("topup_alerts_total", kind=MISROUTED_ALERT)
        alert = AlertOut(
            alert_id=f"{MISROUTED_ALERT}|{record.topic}|{hour}",
            kind=MISROUTED_ALERT,
            severity=Severity.WARN,
            order_id=None,
            provider=None,
            details={
                "topic": record.topic,
                "cause": "producer is not using murmur2: set partitioner=murmur2_random "
                         "(librdkafka clients) or use the Java default partitioner",
                "example": f"{record.where()} belongs on partition {target}",
                "effect": "correct, but each such record costs one more hop",
            },
            raised_at=record.timestamp_ms,
        )
        value = self._catalog.encode("Alert", alert.to_record())
        return [Send(self._alert_topic, alert.key.encode(), value, record.headers or None)]

    def begin(self) -> None:
        """A batch starts: alerts of an aborted one are raised again."""
        self._alerting.clear()

    def committed(self) -> None:
        self._alerted |= self._alerting
        self._alerting.clear()
        # Bounded: only the hours still current matter.
        if len(self._alerted) > 1000:
            newest = max(hour for _, hour in self._alerted)
            self._alerted = {(t, h) for t, h in self._alerted if h >= newest - 1}


def keyed_inputs(stages: Iterable[object]) -> dict[str, KeyOf]:
    """Every keyed input the stages declare (a topic read by several stages once)."""
    keyed: dict[str, KeyOf] = {}
    for stage in stages:
        keyed.update(getattr(stage, "keyed", {}))
    return keyed
