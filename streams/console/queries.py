"""What the console shows, computed by the same `streams.ops` code as the CLI.

Each function is blocking (it scans topics); the app runs them off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.config import Settings
from streams.ops.reviews import Case, load_review_book


@dataclass(frozen=True)
class QueueItem:
    case: Case
    amount_minor: int
    currency: str
    account_id: str | None
    age_s: int


def review_queue(settings: Settings, now_ms: int) -> list[QueueItem]:
    """Open cases, the most money at stake first, then the oldest."""
    book = load_review_book(settings)
    items = []
    for case in book.open_cases():
        order: dict[str, Any] = book.created.get(case.order_id, {})
        items.append(QueueItem(
            case, int(order.get("amount_minor") or 0), str(order.get("currency") or ""),
            order.get("account_id"), max(0, (now_ms - case.opened_at) // 1000),
        ))
    return sorted(items, key=lambda i: (-i.amount_minor, i.case.opened_at))
