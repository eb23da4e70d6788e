"""Publishing the domain's outputs to the topics the contract names for them."""

from __future__ import annotations

from collections.abc import Iterable

from streams import topics
from streams.domain.common.outputs import AlertOut, AuditOut
from streams.domain.orders.outputs import LedgerEntryOut, Output, ReviewCase, StatusChange
from streams.domain.recon.outputs import ControlCommandOut, ReconBreakOut
from streams.runtime.context import Context, correlation_headers
from streams.stages import funnel

Published = Output | ReconBreakOut | ControlCommandOut

TOPIC_OF: dict[type, str] = {
    StatusChange: topics.ORDER_STATUS,
    LedgerEntryOut: topics.CREDITS,
    AlertOut: topics.ALERTS,
    AuditOut: topics.AUDIT,
    ReviewCase: topics.REVIEW_CASES,
    ReconBreakOut: topics.RECON_BREAKS,
    # Reconciliation's freezes go through the operators' topic, audited like theirs.
    ControlCommandOut: topics.CONTROL,
}


def publish_outputs(ctx: Context, outputs: Iterable[Published]) -> None:
    for output in outputs:
        topic = TOPIC_OF[type(output)]
        ctx.publish(topic, output.key, output.to_record(),
                    correlation_headers(output.correlation_id))
        if isinstance(output, AlertOut):
            ctx.metrics.inc("topup_alerts_total", kind=str(output.kind))
        funnel.count(ctx.metrics, output)
