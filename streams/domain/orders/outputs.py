"""What the order state machine emits, one kind per output topic.

`to_record()` gives the Avro record with the contract's field names; `key` is the
contract's partitioning key; `correlation_id` is the header value, not a record field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.domain.common.outputs import AlertOut, AuditOut
from streams.domain.orders.state import OrderStatus


class LedgerOp(StrEnum):
    CREDIT = "CREDIT"
    DEBIT = "DEBIT"
    REVERSAL = "REVERSAL"


class LedgerReason(StrEnum):
    PAYMENT_CONFIRMED = "PAYMENT_CONFIRMED"
    RECONCILIATION = "RECONCILIATION"
    REFUND = "REFUND"
    REVIEW_APPROVED = "REVIEW_APPROVED"
    DUPLICATE_REVERSAL = "DUPLICATE_REVERSAL"
    # An operator's correction of a wrong credit; a contract addition, LedgerEntry v2.
    OPERATOR_REVERSAL = "OPERATOR_REVERSAL"


class AlertKind(StrEnum):
    """The alert kinds the order machine raises (the contract's list is open-ended)."""

    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    MERCHANT_MISMATCH = "MERCHANT_MISMATCH"
    ORDER_MISMATCH = "ORDER_MISMATCH"
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
    ORPHAN_PAYMENT = "ORPHAN_PAYMENT"
    PAID_WHILE_BLOCKED = "PAID_WHILE_BLOCKED"
    DUPLICATE_PAYMENT = "DUPLICATE_PAYMENT"
    LATE_PAYMENT = "LATE_PAYMENT"
    RISK_AFTER_CREDIT = "RISK_AFTER_CREDIT"


class AuditAction(StrEnum):
    CREDIT = "CREDIT"
    DEBIT = "DEBIT"
    REVERSAL = "REVERSAL"
    HOLD = "HOLD"
    RELEASE = "RELEASE"
    BLOCK = "BLOCK"
    RISK_VERDICT = "RISK_VERDICT"
    REVIEW_REJECTED = "REVIEW_REJECTED"
    REFUND_ACCEPTED = "REFUND_ACCEPTED"
    REFUND_FAILED = "REFUND_FAILED"
    REFUSED = "REFUSED"
    IGNORED = "IGNORED"
    DUPLICATE_IGNORED = "DUPLICATE_IGNORED"


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A `topup.order-status` record: emitted only when the status really changes."""

    order_id: str
    status: OrderStatus
    previous_status: OrderStatus | None
    reason: str
    version: int
    updated_at: int
    correlation_id: str | None = None

    @property
    def key(self) -> str:
        return self.order_id

    def to_record(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "status": self.status.value,
            "previous_status": None if self.previous_status is None else self.previous_status.value,
            "reason": self.reason,
            "version": self.version,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class LedgerEntryOut:
    """A `topup.credits` record: one money movement, idempotent by `entry_id`."""

    entry_id: str
    op: LedgerOp
    account_id: str
    order_id: str
    amount_minor: int
    bonus_minor: int
    currency: str
    provider: str
    external_txn_id: str
    refund_id: str | None
    reason: LedgerReason
    caused_by: str
    created_at: int
    correlation_id: str | None = None

    @property
    def key(self) -> str:
        return self.account_id

    def to_record(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "op": self.op.value,
            "account_id": self.account_id,
            "order_id": self.order_id,
            "amount_minor": self.amount_minor,
            "bonus_minor": self.bonus_minor,
            "currency": self.currency,
            "provider": self.provider,
            "external_txn_id": self.external_txn_id,
            "refund_id": self.refund_id,
            "reason": self.reason.value,
            "caused_by": self.caused_by,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class ReviewCase:
    """A request for a human decision, with both sides of the evidence.

    The contract has no review topic; where it goes is the project's choice.
    """

    case_id: str
    order_id: str
    provider: str | None
    reason: str
    evidence: Mapping[str, str]
    opened_at: int
    correlation_id: str | None = None

    @property
    def key(self) -> str:
        return self.order_id

    def to_record(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "order_id": self.order_id,
            "provider": self.provider,
            "reason": self.reason,
            "evidence": dict(self.evidence),
            "opened_at": self.opened_at,
        }


Output = StatusChange | LedgerEntryOut | AlertOut | AuditOut | ReviewCase
