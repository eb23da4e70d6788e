"""The order agent: topup.orders in, topup.order-status out, state per order_id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams import topics
from streams.agents.io import (
    avro_decoder,
    correlation_headers,
    correlation_id,
    process,
    publish,
)

if TYPE_CHECKING:
    from streams.app import Pipeline


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    orders = app.Table(
        "order-state",
        default=None,
        key_type=str,
        partitions=pipeline.settings.partitions,
    )

    async def handle(event, record):  # type: ignore[no-untyped-def]
            order_id = record["order_id"]
            if record["type"] != "CREATED" or orders.get(order_id) is not None:
                return
            correlation = correlation_id(event) or record["event_id"]
            orders[order_id] = {"status": "CREATED", "version": 1, "correlation_id": correlation}
            status = {
                "order_id": order_id,
                "status": "CREATED",
                "previous_status": None,
                "reason": "order created",
                "version": 1,
                "updated_at": record["occurred_at"],
            }
            await publish(
                pipeline, topics.ORDER_STATUS, order_id, status, correlation_headers(correlation)
            )

    @app.agent(pipeline.topics[topics.ORDERS], name="orders")
    async def order_agent(stream):  # type: ignore[no-untyped-def]
        await process(pipeline, stream, avro_decoder(pipeline, "OrderEvent"), handle)
