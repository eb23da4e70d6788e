"""Correction of a wrong credit: `topup-guard reverse ENTRY_ID --reason … --by WHO`.

The entry is looked up on the ledger itself (a bounded scan of `topup.credits`, as trace
does). What cannot be reversed is refused here with a clear message and an audit record;
what can is sent to the order stage as the operator's REVERSAL_REQUESTED on
`topup.orders` (OrderEvent v2, a contract addition), keyed by the order, with an event id
derived from the entry alone. The order stage books the REVERSAL, once: a repeated request
carries the same event id, and the reversal's entry id derives from the credit's payment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.domain.common.ids import derived_id, entry_id
from streams.kafka_clients import ConsumedRecord, producer
from streams.ops.freezes import OperatorError
from streams.ops.ledger import ledger_entries
from streams.ops.scan import ProgressHook, scan

REQUEST = "REVERSAL_REQUESTED"


@dataclass(frozen=True)
class LedgerLookup:
    entry: dict[str, Any] | None  # the entry asked for, as on the ledger
    reversal: dict[str, Any] | None  # the REVERSAL already booked for it, if any


@dataclass(frozen=True)
class ReversalRequest:
    event: dict[str, Any]  # the OrderEvent sent to topup.orders
    audit: dict[str, Any]
    reversal_entry_id: str  # the entry the order stage will book

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reversal_entry_id(credit: dict[str, Any]) -> str:
    """The REVERSAL the order stage books for this credit (the order machine's rule)."""
    return entry_id(credit["order_id"], "REVERSAL", credit["external_txn_id"], None)


def lookup(records: Iterable[ConsumedRecord], wanted: str) -> LedgerLookup:
    entries = {entry["entry_id"]: entry for entry in ledger_entries(records)}
    found = entries.get(wanted)
    if found is None or found["op"] != "CREDIT":
        return LedgerLookup(found, None)
    return LedgerLookup(found, entries.get(reversal_entry_id(found)))


def _refusal_audit(wanted: str, subject: str, by: str, reason: str, why: str,
                   now_ms: int) -> dict[str, Any]:
    return {
        "audit_id": derived_id("audit", "reverse-refused", wanted, by, now_ms),
        "subject": subject,
        "action": f"{REQUEST}_REFUSED",
        "rule": None,
        "inputs": {"entry_id": wanted, "reason": reason, "why": why},
        "outcome": "REFUSED",
        "actor": by,
        "at": now_ms,
    }


def check_arguments(wanted: str, by: str, reason: str) -> None:
    """Refuses, before anything is read, a request nobody could account for."""
    if not wanted.strip():
        raise OperatorError("ENTRY_ID must not be empty")
    if not by.strip() or not reason.strip():
        raise OperatorError("--by and --reason must not be empty (a correction is audited)")


def plan(found: LedgerLookup, wanted: str, by: str, reason: str,
         now_ms: int) -> ReversalRequest:
    """The request for a reversible entry; OperatorError otherwise (RefusedReversal, with
    the audit record of the refusal, once the arguments are well formed)."""
    check_arguments(wanted, by, reason)
    by, reason = by.strip(), reason.strip()
    entry = found.entry
    why = None
    if entry is None:
        why = f"no ledger entry {wanted!r} on {topics.CREDITS}"
    elif entry["op"] != "CREDIT":
        why = (f"entry {wanted} is a {entry['op']} ({entry['reason']}), not a CREDIT: only a "
               "credit can be reversed")
    elif found.reversal is not None:
        why = (f"entry {wanted} is already reversed by {found.reversal['entry_id']} "
               f"(caused by {found.reversal['caused_by']})")
    if why is not None:
        subject = entry["order_id"] if entry is not None else wanted
        raise RefusedReversal(why, _refusal_audit(wanted, subject, by, reason, why, now_ms))
    assert entry is not None
    event = {
        "event_id": derived_id("reverse", wanted),
        "type": REQUEST,
        "order_id": entry["order_id"],
        "occurred_at": now_ms,
        "account_id": entry["account_id"],
        "user_id": "",
        "amount_minor": 0,  # the order stage reverses what the credit booked, nothing else
        "currency": entry["currency"],
        "provider": entry["provider"],
        "merchant_id": "",
        "actor": by,
        "entry_id": wanted,
        "reason": reason,
    }
    reversal_id = reversal_entry_id(entry)
    audit = {
        "audit_id": derived_id("audit", "reverse", wanted, event["event_id"]),
        "subject": entry["order_id"],
        "action": f"{REQUEST}_ISSUED",
        "rule": None,
        "inputs": {"entry_id": wanted, "reason": reason, "event_id": event["event_id"],
                   "reversal_entry_id": reversal_id,
                   "amount_minor": str(entry["amount_minor"]),
                   "bonus_minor": str(entry["bonus_minor"]), "currency": entry["currency"]},
        "outcome": f"{REQUEST} sent to {topics.ORDERS}",
        "actor": by,
        "at": now_ms,
    }
    return ReversalRequest(event, audit, reversal_id)


class RefusedReversal(OperatorError):
    """A well-formed request that cannot be honoured; its refusal is audited."""

    def __init__(self, message: str, audit: dict[str, Any]) -> None:
        super().__init__(message)
        self.audit = audit


def reverse(
    settings: Settings, wanted: str, by: str, reason: str, now_ms: int,
    progress: ProgressHook | None = None,
) -> ReversalRequest:
    """Send the reversal of one credit; the request sent, or OperatorError."""
    check_arguments(wanted, by, reason)
    found = lookup(scan(settings, [topics.CREDITS], progress=progress), wanted)
    catalog, client = default_catalog(), producer(settings, acks="all")
    try:
        request = plan(found, wanted, by, reason, now_ms)
    except RefusedReversal as refused:
        client.produce(topics.AUDIT, key=refused.audit["subject"],
                       value=catalog.encode("AuditRecord", refused.audit))
        client.flush(30)
        raise
    client.produce(topics.ORDERS, key=request.event["order_id"],
                   value=catalog.encode("OrderEvent", request.event))
    client.produce(topics.AUDIT, key=request.audit["subject"],
                   value=catalog.encode("AuditRecord", request.audit))
    if client.flush(30) != 0:
        raise OperatorError("the broker did not acknowledge the reversal within 30 s")
    return request
