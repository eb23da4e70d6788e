"""Every topic the system reads or writes, with the settings it is created with."""

from __future__ import annotations

from typing import Any

from streams import internal_records as records
from streams.runtime import own_topics

# The spec's type is the runtime's; the list of topics is the application's.
from streams.runtime.topic_spec import DAY_MS as DAY_MS
from streams.runtime.topic_spec import TopicSpec as TopicSpec

ORDERS = "topup.orders"
WEBHOOKS = "topup.webhooks"
SETTLEMENTS = "topup.settlements"
CONTROL = "topup.control"
CREDITS = "topup.credits"
ORDER_STATUS = "topup.order-status"
RISK_DECISIONS = "topup.risk-decisions"
RECON_BREAKS = "topup.recon-breaks"
ALERTS = "topup.alerts"
AUDIT = "topup.audit"
DLQ = "topup.dlq"
# Project topic: review cases for humans, answered with REVIEW_* order events.
REVIEW_CASES = "topup.review-cases"
# Internal: verified payment events re-keyed by order_id (the repartition of intake).
PAYMENTS = "topup.internal.payments"
# Internal: control commands broadcast to every partition of the order stage.
ORDER_COMMANDS = "topup.internal.order-commands"
# Internal: what reconciliation joins, keyed by order_id: settlement lines, ledger
# entries and order snapshots, and the batches' watermarks broadcast to every partition.
RECON_INPUTS = "topup.internal.recon-inputs"
# Internal: settlement records keyed by batch_id, for the control totals.
SETTLEMENT_BATCHES = "topup.internal.settlement-batches"
# Internal: risk observations keyed by dimension ("device:dev-1"), and the answers with the
# dimension's counts keyed back by order_id.
RISK_OBSERVATIONS = "topup.internal.risk-observations"
RISK_ANSWERS = "topup.internal.risk-answers"
# Internal: every reconciliation decision, and intake's health per minute, keyed by
# provider, for the mismatch rate.
RECON_OUTCOMES = "topup.internal.recon-outcomes"
# Internal: records of keyed inputs found on the wrong partition for their key, forwarded
# to the right one (streams/runtime/repartition.py).
ORDERS_REPARTITION = "topup.internal.orders-repartition"
# Internal, the runtime's own: its event-time ticks for partitions without input, and
# the repartition topics of keyed inputs.
TICKS = own_topics.TICKS
repartition_topic = own_topics.repartition_topic


# The internal topics' specs, typed by their record, for their writers and readers.
PAYMENTS_TOPIC = TopicSpec(PAYMENTS, None, retention_days=35, codec=records.PAYMENT)
ORDER_COMMANDS_TOPIC = TopicSpec(ORDER_COMMANDS, None, codec=records.ORDER_COMMAND)
RECON_INPUTS_TOPIC = TopicSpec(RECON_INPUTS, None, retention_days=35,
                               codec=records.SETTLED_INPUT)
SETTLEMENT_BATCHES_TOPIC = TopicSpec(SETTLEMENT_BATCHES, None, retention_days=35,
                                     codec=records.SETTLED_RECORD)
RECON_OUTCOMES_TOPIC = TopicSpec(RECON_OUTCOMES, None, codec=records.RATE_INPUT)
RISK_OBSERVATIONS_TOPIC = TopicSpec(RISK_OBSERVATIONS, None, codec=records.OBSERVATIONS)
RISK_ANSWERS_TOPIC = TopicSpec(RISK_ANSWERS, None, codec=records.ANSWERS)

TOPICS: tuple[TopicSpec[Any], ...] = (
    TopicSpec(ORDERS, "OrderEvent"),
    TopicSpec(WEBHOOKS, "WebhookDelivery"),
    TopicSpec(SETTLEMENTS, "SettlementRecord", retention_days=90),
    TopicSpec(CONTROL, "ControlCommand", compacted=True),
    # The ledger is the truth that balances are rebuilt from: never expire it.
    TopicSpec(CREDITS, "LedgerEntry", retention_days=-1),
    TopicSpec(ORDER_STATUS, "OrderStatus", compacted=True),
    TopicSpec(RISK_DECISIONS, "RiskDecision"),
    TopicSpec(RECON_BREAKS, "ReconBreak", retention_days=90),
    TopicSpec(ALERTS, "Alert"),
    TopicSpec(AUDIT, "AuditRecord", retention_days=-1),
    TopicSpec(DLQ, "DeadLetter", retention_days=30),
    TopicSpec(REVIEW_CASES, "ReviewCase", retention_days=90),
    PAYMENTS_TOPIC,
    ORDER_COMMANDS_TOPIC,
    RECON_INPUTS_TOPIC,
    SETTLEMENT_BATCHES_TOPIC,
    RECON_OUTCOMES_TOPIC,
    RISK_OBSERVATIONS_TOPIC,
    RISK_ANSWERS_TOPIC,
    TopicSpec(ORDERS_REPARTITION, None),
    TopicSpec(TICKS, None),
)

BY_NAME = {spec.name: spec for spec in TOPICS}
