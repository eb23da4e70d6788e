"""What the review queue shows, computed by the same `streams.ops` code as the CLI.

Blocking (it scans topics); the app runs it off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams import topics
from streams.codecs import DecodeError, default_catalog
from streams.config import Settings
from streams.ops.reviews import REVIEW_TOPICS, Case, review_book
from streams.ops.scan import scan

QUEUE_TOPICS = (*REVIEW_TOPICS, topics.RISK_DECISIONS)


@dataclass(frozen=True)
class QueueItem:
    case: Case
    amount_minor: int
    currency: str
    account_id: str | None
    age_s: int
    risk: dict[str, Any] | None = None  # the order's risk decision, when it has one


def review_queue(settings: Settings, now_ms: int) -> list[QueueItem]:
    """Open cases, the most money at stake first, then the oldest; each with the risk
    stage's verdict, score and reasons beside the case's own evidence. One scan serves
    both: review_book ignores the risk topic."""
    records = list(scan(settings, QUEUE_TOPICS))
    book = review_book(records)
    catalog, risk = default_catalog(), dict[str, dict[str, Any]]()
    for record in records:
        if record.topic == topics.RISK_DECISIONS and record.value is not None:
            try:
                decision = catalog.decode("RiskDecision", record.value)
            except DecodeError:
                continue
            risk.setdefault(decision["order_id"], decision)  # the first verdict stands
    items = []
    for case in book.open_cases():
        order: dict[str, Any] = book.created.get(case.order_id, {})
        items.append(QueueItem(
            case, int(order.get("amount_minor") or 0), str(order.get("currency") or ""),
            order.get("account_id"), max(0, (now_ms - case.opened_at) // 1000),
            risk.get(case.order_id),
        ))
    return sorted(items, key=lambda i: (-i.amount_minor, i.case.opened_at))
