"""What the review queue shows, computed by the same `streams.ops` code as the CLI.

Blocking (it scans topics); the app runs it off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams import topics
from streams.codecs import DecodeError, default_catalog
from streams.config import Settings
from streams.ops.reviews import REVIEW_TOPICS, Case, review_book
from streams.ops.scan import scan

# The risk audit carries the velocity counts: RiskDecision (the contract) has no field.
QUEUE_TOPICS = (*REVIEW_TOPICS, topics.RISK_DECISIONS, topics.AUDIT)
VELOCITY_PREFIX = "velocity."


@dataclass(frozen=True)
class QueueItem:
    case: Case
    amount_minor: int
    currency: str
    account_id: str | None
    age_s: int
    risk: dict[str, Any] | None = None  # the order's risk decision, when it has one
    # `velocity.<dimension>.<window>` -> counts, from the risk decision's audit record.
    velocity: dict[str, str] = field(default_factory=dict)


def review_queue(settings: Settings, now_ms: int) -> list[QueueItem]:
    """Open cases, the most money at stake first, then the oldest; each with the risk
    stage's verdict, score, reasons and velocity counts beside the case's own evidence. One
    scan serves all: review_book ignores the risk and audit topics."""
    records = list(scan(settings, QUEUE_TOPICS))
    book = review_book(records)
    open_orders = {case.order_id for case in book.open_cases()}
    catalog, risk = default_catalog(), dict[str, dict[str, Any]]()
    velocity: dict[str, dict[str, str]] = {}
    for record in records:
        if record.value is None or record.topic not in (topics.RISK_DECISIONS, topics.AUDIT):
            continue
        try:
            if record.topic == topics.RISK_DECISIONS:
                decision = catalog.decode("RiskDecision", record.value)
                risk.setdefault(decision["order_id"], decision)  # the first verdict stands
                continue
            audit = catalog.decode("AuditRecord", record.value)
        except DecodeError:
            continue
        if audit["subject"] in open_orders and str(audit["action"]).startswith("RISK_"):
            velocity.setdefault(audit["subject"], {
                key.removeprefix(VELOCITY_PREFIX): value
                for key, value in (audit.get("inputs") or {}).items()
                if key.startswith(VELOCITY_PREFIX)})
    items = []
    for case in book.open_cases():
        order: dict[str, Any] = book.created.get(case.order_id, {})
        items.append(QueueItem(
            case, int(order.get("amount_minor") or 0), str(order.get("currency") or ""),
            order.get("account_id"), max(0, (now_ms - case.opened_at) // 1000),
            risk.get(case.order_id), velocity.get(case.order_id, {}),
        ))
    return sorted(items, key=lambda i: (-i.amount_minor, i.case.opened_at))
