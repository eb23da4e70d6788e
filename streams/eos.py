"""A targeted fix for faust-streaming's exactly-once sends.

faust's TransactionManager picks the transaction for an outgoing record from the
*destination* topic's partition, while it commits consumed offsets in the transaction of
the *source* partition. A record whose key lands on another partition (a credit keyed by
account, a DLQ record, a re-keyed payment) is then written in a different transaction
from the offset that caused it — committed without it, or with no transaction at all when
that partition is owned by another worker (faust-streaming issues 177, 440, 517). Kafka
Streams ties every output to the task (source partition) that produced it; so do we: a
send made while processing an event joins the transaction of that event's partition.
"""

from __future__ import annotations

from typing import Any

from faust.streams import current_event
from faust.transport.consumer import TransactionManager

_original_send = TransactionManager.send


async def _send_in_source_transaction(
    self: TransactionManager,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int | None,
    timestamp: float | None,
    headers: Any,
    *,
    transactional_id: str | None = None,
) -> Any:
    event = current_event()
    if event is None:
        return await _original_send(
            self, topic, key, value, partition, timestamp, headers,
            transactional_id=transactional_id,
        )
    source = event.message.tp
    group = self.app.assignor.group_for_topic(source.topic)
    tid = f"{self.app.conf.id}-{group}-{source.partition}"
    return await self.producer.send(
        topic, key, value, partition, timestamp, headers, transactional_id=tid
    )


def install() -> None:
    """Idempotent: patch TransactionManager.send once per process."""
    if TransactionManager.send is not _send_in_source_transaction:
        TransactionManager.send = _send_in_source_transaction  # type: ignore[method-assign]
