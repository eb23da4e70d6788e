"""The intake stage: raw webhook deliveries in, verified payment events out, keyed by order.

Verification comes first, then deduplication by (provider, provider event id); only a
first sighting is re-keyed by order_id onto topup.internal.payments, the repartition that
lets the order stage join payments with orders on one partition. Every delivery of a known
provider also counts in that provider's minute of intake health, which the mismatch-rate
stage reads to decide whether a high break rate pages.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from streams import topics
from streams.codecs import SchemaCatalog
from streams.config import Settings
from streams.domain.common.dedup import DedupWindow
from streams.domain.common.event_time import EventTimeBounds, EventTimeOutOfRange
from streams.domain.common.ids import derived_id
from streams.domain.common.int64 import AmountOutOfRange, check_amount_limit
from streams.domain.common.outputs import AlertOut, Severity
from streams.domain.common.payments import check_payment_amount
from streams.domain.recon.intake_health import IntakeTally, count_delivery
from streams.internal_records import VerifiedPayment
from streams.metrics import Metrics
from streams.providers import Rejection, RejectionKind, adapter_for, build_adapters
from streams.runtime.context import Context, Send, correlation_headers
from streams.runtime.stage import Stage
from streams.runtime.store import StoreSpec
from streams.stages.decoding import avro_decoder

log = logging.getLogger(__name__)

DAY_S = 24 * 60 * 60
SEEN_STORE = "webhook-dedup"
# Rejections that may be an attack rather than a broken sender: operators must see them.
ALERTED = {RejectionKind.SIGNATURE_INVALID, RejectionKind.STALE_SIGNATURE}


def dedup_key(provider: str, event_id: str) -> str:
    # Provider names never contain ':', so the key splits unambiguously at the first one.
    return f"{provider}:{event_id}"


def health_key(provider: str) -> str:
    # Dedup keys start with a provider name, never with '~'.
    return f"~health|{provider}"


def stage(settings: Settings, catalog: SchemaCatalog, metrics: Metrics) -> Stage:
    adapters = build_adapters(settings)
    if not adapters:
        log.warning(
            "no webhook provider is configured (TOPUP_HMAC_SECRETS, TOPUP_STRIPE_WEBHOOK_SECRETS, "
            "TOPUP_WECHATPAY_PLATFORM_KEYS with TOPUP_WECHATPAY_APIV3_KEY): every delivery "
            "will be dead-lettered as UNKNOWN_PROVIDER"
        )
    # The URL names the provider, so callers choose it: only configured ones get a series.
    metrics.bound("provider", adapters)
    window = DedupWindow.of_days(settings.dedup_retention_days)
    # The decision uses event time (below); RocksDB's TTL and the changelog's retention
    # only reclaim space, a day after an entry can no longer change a decision.
    physical_retention_s = (settings.dedup_retention_days + 1) * DAY_S
    seen = StoreSpec(
        SEEN_STORE,
        ttl_s=physical_retention_s,
        changelog_config={
            "cleanup.policy": "compact,delete",
            "retention.ms": str(physical_retention_s * 1000),
        },
    )
    metrics.describe("topup_webhooks_received_total", "Deliveries consumed, by provider")
    metrics.describe("topup_webhooks_rejected_total", "Deliveries refused, by provider and reason")
    metrics.describe("topup_webhooks_duplicate_total", "Idempotency hits, by provider")
    metrics.describe("topup_webhooks_ignored_total", "Verified events of types not acted on")
    metrics.describe("topup_intake_lag_seconds", "Wall time minus received_at of the last delivery")

    time_bounds = EventTimeBounds.of_seconds(settings.max_event_skew_s,
                                             settings.max_event_age_s)

    def handle(ctx: Context, delivery: dict[str, Any]) -> None:
        provider, received_at = delivery["provider"], delivery["received_at"]
        try:
            # The edge for payments: what passes here cannot move a later stage's clock.
            time_bounds.check("received_at", received_at, ctx.record.timestamp_ms)
        except EventTimeOutOfRange as exc:
            ctx.dead_letter("SCHEMA_INVALID", str(exc))
            return
        metrics.inc("topup_webhooks_received_total", provider=provider)
        metrics.set("topup_intake_lag_seconds", max(0.0, time.time() - received_at / 1000))
        try:
            adapter = adapter_for(adapters, provider)
            payment = adapter.parse(delivery["headers"], delivery["body"], received_at)
        except Rejection as rejection:
            metrics.inc("topup_webhooks_rejected_total", provider=provider,
                        reason=rejection.kind.value)
            ctx.dead_letter(rejection.kind.value, rejection.message)
            if rejection.kind is not RejectionKind.UNKNOWN_PROVIDER:
                _count_health(ctx, provider, received_at, rejection.kind in ALERTED)
            if rejection.kind in ALERTED:
                _alert(ctx, delivery, rejection)
            return
        _count_health(ctx, provider, received_at, verification_failed=False)
        if payment is None:
            metrics.inc("topup_webhooks_ignored_total", provider=provider)
            return
        try:
            time_bounds.check("occurred_at", payment.occurred_at, received_at)
            check_amount_limit("amount_minor", payment.amount_minor, settings.max_amount_minor)
            check_payment_amount(payment)
        except (EventTimeOutOfRange, AmountOutOfRange) as exc:
            ctx.dead_letter("SCHEMA_INVALID", str(exc))
            return
        table = ctx.table(seen.name)
        key = dedup_key(payment.provider, payment.event_id)
        first_seen = table.get(key)
        if window.is_repeat(first_seen, received_at):
            metrics.inc("topup_webhooks_duplicate_total", provider=provider)
            return
        table[key] = received_at
        verified = VerifiedPayment(payment, received_at, delivery["delivery_id"])
        ctx.send(Send(
            topics.PAYMENTS,
            key=payment.order_id.encode(),
            value=topics.PAYMENTS_TOPIC.encode(verified),
            headers=correlation_headers(ctx.record.correlation_id),
        ))

    return Stage("intake", (topics.WEBHOOKS,), (seen,),
                 avro_decoder(catalog, "WebhookDelivery"), handle,
                 outputs=(topics.PAYMENTS, topics.ALERTS, topics.RECON_OUTCOMES))


def _count_health(
    ctx: Context, provider: str, received_at: int, verification_failed: bool
) -> None:
    # How long the delivery sat in topup.webhooks: the edge stamped it when it wrote it.
    # A wall-clock read, deliberately: it only picks PAGE or WARN for a rate alert and
    # never a money decision (topology.md, "Wall-clock reads in handlers").
    waited_s = time.time() - ctx.record.timestamp_ms / 1000
    table = ctx.table(SEEN_STORE)
    tally, finished = count_delivery(
        table.load(health_key(provider), IntakeTally),
        provider, received_at, verification_failed, waited_s,
    )
    table[health_key(provider)] = tally
    if finished is not None:
        ctx.send(Send(topics.RECON_OUTCOMES, provider.encode(),
                      topics.RECON_OUTCOMES_TOPIC.encode(finished)))


def _alert(ctx: Context, delivery: dict[str, Any], rejection: Rejection) -> None:
    kind = rejection.kind.value
    alert = AlertOut(
        alert_id=derived_id("alert", kind, delivery["delivery_id"]),
        kind=kind,
        severity=Severity.WARN,
        # Nothing in an unverified body is trusted, so no order id.
        order_id=None,
        provider=delivery["provider"],
        details={
            "delivery_id": delivery["delivery_id"],
            "source_ip": delivery.get("source_ip") or "",
            "reason": rejection.message,
        },
        raised_at=delivery["received_at"],
    )
    ctx.publish(topics.ALERTS, alert.key, alert.to_record())
