"""Decoding agent input and publishing agent output, shared by every agent.

Input values are decoded here rather than by faust so that a bad record becomes a dead
letter carrying its original bytes, and the agent moves on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from faust.types import EventT, StreamT

from streams import eos, topics
from streams.codecs import DecodeError

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)

CORRELATION_HEADER = "correlation_id"
Headers = list[tuple[str, bytes]]


def header_map(event: EventT) -> dict[str, bytes]:
    raw = event.message.headers or []
    items = raw.items() if isinstance(raw, Mapping) else raw
    return {key: value for key, value in items}


def correlation_id(event: EventT) -> str | None:
    value = header_map(event).get(CORRELATION_HEADER)
    return value.decode("utf-8", "replace") if value else None


def correlation_headers(correlation: str | None) -> Headers | None:
    return [(CORRELATION_HEADER, correlation.encode())] if correlation else None


def event_time_ms(event: EventT) -> int:
    return int(event.message.timestamp * 1000)


Decoder = Callable[[EventT], Any]
Handler = Callable[[EventT, Any], Awaitable[None]]


def avro_decoder(pipeline: Pipeline, record_name: str) -> Decoder:
    def decode(event: EventT) -> dict[str, Any]:
        return pipeline.catalog.decode(record_name, event.message.value)

    return decode


async def process(pipeline: Pipeline, stream: StreamT, decode: Decoder, handle: Handler) -> None:
    """Run `handle` on every decodable event; dead-letter the rest.

    Each event is decoded, handled and acked inside the commit barrier, so a transaction
    holds all of an event's outputs and its offset, or none of them. A failure inside
    `handle` is a bug, not bad input, but it must not wedge the partition either: it is
    logged, counted and dead-lettered, and the agent goes on.
    """
    metrics = pipeline.metrics
    async for event in stream.events():
        async with eos.barrier():
            metrics.inc("topup_records_consumed_total", topic=event.message.topic)
            try:
                record = decode(event)
            except DecodeError as exc:
                await dead_letter(pipeline, event, exc.reason, str(exc))
            else:
                try:
                    await handle(event, record)
                except Exception as exc:
                    log.exception("processing failed for %s", _where(event))
                    metrics.inc("topup_processing_errors_total", topic=event.message.topic)
                    error = f"processing failed: {type(exc).__name__}: {exc}"
                    await dead_letter(pipeline, event, "BAD_PAYLOAD", error)
            await stream.ack(event)


def _where(event: EventT) -> str:
    message = event.message
    return f"{message.topic}[{message.partition}]@{message.offset}"


async def publish(
    pipeline: Pipeline,
    topic: str,
    key: str | None,
    record: Mapping[str, Any],
    headers: Headers | None = None,
) -> None:
    value = pipeline.catalog.encode(topics.BY_NAME[topic].record, record)
    await pipeline.topics[topic].send(
        key=key.encode() if key is not None else None, value=value, headers=headers
    )
    pipeline.metrics.inc("topup_records_published_total", topic=topic)


async def dead_letter(pipeline: Pipeline, event: EventT, kind: str, error: str) -> None:
    message = event.message
    log.warning("dead letter from %s: %s: %s", _where(event), kind, error)
    record = {
        "source_topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key": message.key,
        "value": message.value if message.value is not None else b"",
        "error_kind": kind,
        "error": error,
        # Event time, not the wall clock: a replay must produce the same dead letter.
        "failed_at": event_time_ms(event),
    }
    key = message.key.decode("utf-8", "replace") if message.key else None
    await publish(pipeline, topics.DLQ, key, record, correlation_headers(correlation_id(event)))
    pipeline.metrics.inc("topup_dead_letters_total", topic=message.topic, kind=kind)
