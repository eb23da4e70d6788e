"""The review queue: open cases with their evidence, and an operator's decision on one.

A case (`topup.review-cases`) is open while its order is ON_HOLD and no REVIEW_APPROVED or
REVIEW_REJECTED order event has been issued for it since the case opened. A decision is
the contract's REVIEW_* event on `topup.orders`, with a deterministic event id per case
and decision, so a repeated request is applied once by the order stage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from streams import topics
from streams.codecs import DecodeError, default_catalog
from streams.config import Settings
from streams.domain.common.ids import derived_id
from streams.kafka_clients import ConsumedRecord, producer
from streams.ops.freezes import OperatorError
from streams.ops.scan import ProgressHook, scan

REVIEW_TOPICS = (topics.REVIEW_CASES, topics.ORDERS, topics.ORDER_STATUS)
DECISIONS = {"approve": "REVIEW_APPROVED", "reject": "REVIEW_REJECTED"}


@dataclass(frozen=True)
class Case:
    case_id: str
    order_id: str
    provider: str | None
    reason: str
    evidence: dict[str, str]
    opened_at: int
    order_status: str | None
    decided: str | None  # the REVIEW_* event issued since it opened, if any

    @property
    def open(self) -> bool:
        return self.decided is None and self.order_status == "ON_HOLD"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"open": self.open}


@dataclass(frozen=True)
class ReviewBook:
    cases: dict[str, Case]
    created: dict[str, dict]  # order_id -> its CREATED event

    def open_cases(self) -> list[Case]:
        return sorted((c for c in self.cases.values() if c.open), key=lambda c: c.opened_at)


def review_book(records: Iterable[ConsumedRecord]) -> ReviewBook:
    catalog = default_catalog()
    raw_cases, created, decisions, status = [], {}, {}, {}
    for record in records:
        if record.value is None:
            continue
        try:
            if record.topic == topics.REVIEW_CASES:
                raw_cases.append(catalog.decode("ReviewCase", record.value))
            elif record.topic == topics.ORDERS:
                event = catalog.decode("OrderEvent", record.value)
                if event["type"] == "CREATED":
                    created.setdefault(event["order_id"], event)
                elif event["type"] in DECISIONS.values():
                    decisions.setdefault(event["order_id"], []).append(event)
            elif record.topic == topics.ORDER_STATUS:
                change = catalog.decode("OrderStatus", record.value)
                if change["version"] > status.get(change["order_id"], (0, ""))[0]:
                    status[change["order_id"]] = (change["version"], change["status"])
        except DecodeError:
            continue
    cases = {}
    for case in raw_cases:
        order_id = case["order_id"]
        later = [d for d in decisions.get(order_id, []) if d["occurred_at"] >= case["opened_at"]]
        cases[case["case_id"]] = Case(
            case["case_id"], order_id, case["provider"], case["reason"], case["evidence"],
            case["opened_at"], status.get(order_id, (0, None))[1],
            later[0]["type"] if later else None,
        )
    return ReviewBook(cases, created)


def load_review_book(settings: Settings, progress: ProgressHook | None = None) -> ReviewBook:
    return review_book(scan(settings, REVIEW_TOPICS, progress=progress))


def decision_event(
    book: ReviewBook, case_id: str, decision: str, by: str, note: str, now_ms: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The REVIEW_* order event and the audit record for one decision, or OperatorError."""
    if decision not in DECISIONS:
        raise OperatorError(f"decision must be one of {sorted(DECISIONS)}, not {decision!r}")
    if not by.strip() or not note.strip():
        raise OperatorError("--by and --note must not be empty")
    case = book.cases.get(case_id)
    if case is None:
        raise OperatorError(f"no review case {case_id!r} on {topics.REVIEW_CASES}")
    if case.decided is not None:
        raise OperatorError(f"case {case_id} is already decided ({case.decided})")
    if not case.open:
        raise OperatorError(f"case {case_id}: order {case.order_id} is {case.order_status}, "
                            "not ON_HOLD, so there is nothing to decide")
    order = book.created.get(case.order_id)
    if order is None:
        raise OperatorError(f"order {case.order_id} has no CREATED event on {topics.ORDERS}")
    event_type = DECISIONS[decision]
    event = {**order, "type": event_type, "occurred_at": now_ms, "actor": by.strip(),
             "event_id": derived_id("review", case_id, event_type)}
    audit = {
        "audit_id": derived_id("audit", "review", case_id, event_type),
        "subject": case.order_id,
        "action": f"{event_type}_ISSUED",
        "rule": None,
        "inputs": {"case_id": case_id, "note": note.strip(), "event_id": event["event_id"]},
        "outcome": f"{event_type} sent to {topics.ORDERS}",
        "actor": by.strip(),
        "at": now_ms,
    }
    return event, audit


def decide(
    settings: Settings, case_id: str, decision: str, by: str, note: str, now_ms: int,
    progress: ProgressHook | None = None,
) -> dict[str, Any]:
    """Send an operator's decision on a case; the order event sent, or OperatorError."""
    event, audit = decision_event(load_review_book(settings, progress), case_id, decision,
                                  by, note, now_ms)
    catalog, client = default_catalog(), producer(settings, acks="all")
    client.produce(topics.ORDERS, key=event["order_id"],
                   value=catalog.encode("OrderEvent", event))
    client.produce(topics.AUDIT, key=audit["subject"],
                   value=catalog.encode("AuditRecord", audit))
    if client.flush(30) != 0:
        raise OperatorError("the broker did not acknowledge the decision within 30 s")
    return event
