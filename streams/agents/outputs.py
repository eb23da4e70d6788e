"""Publishing the domain's outputs to the topics the contract names for them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from streams import topics
from streams.agents.io import correlation_headers, publish
from streams.domain.order_outputs import (
    AlertOut,
    AuditOut,
    LedgerEntryOut,
    Output,
    ReviewCase,
    StatusChange,
)

if TYPE_CHECKING:
    from streams.app import Pipeline

TOPIC_OF: dict[type, str] = {
    StatusChange: topics.ORDER_STATUS,
    LedgerEntryOut: topics.CREDITS,
    AlertOut: topics.ALERTS,
    AuditOut: topics.AUDIT,
    ReviewCase: topics.REVIEW_CASES,
}


async def publish_outputs(pipeline: Pipeline, outputs: Iterable[Output]) -> None:
    for output in outputs:
        topic = TOPIC_OF[type(output)]
        await publish(
            pipeline, topic, output.key, output.to_record(),
            correlation_headers(output.correlation_id),
        )
        if isinstance(output, AlertOut):
            pipeline.metrics.inc("topup_alerts_total", kind=str(output.kind))
