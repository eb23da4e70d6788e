"""What reconciliation emits besides alerts and audit records (`common.outputs.AlertOut`,
`common.outputs.AuditOut`): breaks, freeze commands, settlement proofs for the order
stage, and one outcome per decision for the mismatch-rate stage.

`to_record()` gives the Avro record with the contract's field names; `key` is the
partitioning key; `correlation_id` is the header value, not a record field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.domain.common.freeze import FreezeAction, control_key
from streams.domain.common.payments import PaymentEvent


class ReconCategory(StrEnum):
    MISSING_CREDIT = "MISSING_CREDIT"
    MISSING_AT_PROVIDER = "MISSING_AT_PROVIDER"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    REFUND_STATUS_MISMATCH = "REFUND_STATUS_MISMATCH"
    DUPLICATE_SETTLEMENT = "DUPLICATE_SETTLEMENT"


class ReconAction(StrEnum):
    AUTO_CORRECTED = "AUTO_CORRECTED"
    FROZEN = "FROZEN"
    MANUAL_REVIEW = "MANUAL_REVIEW"


class ReconAuditAction(StrEnum):
    """Audit actions of reconciliation; a break's audit action is the break's action."""

    MATCHED = "MATCHED"
    AUTO_CORRECTED = "AUTO_CORRECTED"
    FROZEN = "FROZEN"
    MANUAL_REVIEW = "MANUAL_REVIEW"
    CHARGEBACK = "CHARGEBACK"


class ReconAlertKind(StrEnum):
    MISSING_AT_PROVIDER = "MISSING_AT_PROVIDER"
    CHARGEBACK = "CHARGEBACK"
    BATCH_TOTALS_MISMATCH = "BATCH_TOTALS_MISMATCH"
    MISMATCH_RATE_HIGH = "MISMATCH_RATE_HIGH"


@dataclass(frozen=True, slots=True)
class ReconBreakOut:
    """A `topup.recon-breaks` record. Expected is the ledger's side (or the order's, when
    the ledger has nothing), actual the provider's; None where that side has no record."""

    break_id: str
    category: ReconCategory
    order_id: str
    provider: str
    expected_amount_minor: int | None
    actual_amount_minor: int | None
    expected_currency: str | None
    actual_currency: str | None
    action: ReconAction
    evidence: Mapping[str, str]
    detected_at: int
    correlation_id: str | None = None

    @property
    def key(self) -> str:
        return self.order_id

    def to_record(self) -> dict[str, Any]:
        return {
            "break_id": self.break_id,
            "category": self.category.value,
            "order_id": self.order_id,
            "provider": self.provider,
            "expected_amount_minor": self.expected_amount_minor,
            "actual_amount_minor": self.actual_amount_minor,
            "expected_currency": self.expected_currency,
            "actual_currency": self.actual_currency,
            "action": self.action.value,
            "evidence": dict(self.evidence),
            "detected_at": self.detected_at,
        }


@dataclass(frozen=True, slots=True)
class ControlCommandOut:
    """A `topup.control` record (key: scope and target) that reconciliation issues itself."""

    command_id: str
    action: FreezeAction
    scope: str
    reason: str
    issued_by: str
    issued_at: int
    correlation_id: str | None = None

    @property
    def key(self) -> str:
        return control_key(self.scope, self.action)

    def to_record(self) -> dict[str, Any]:
        return {
            "command_id": self.command_id,
            "action": self.action.value,
            "scope": self.scope,
            "reason": self.reason,
            "issued_by": self.issued_by,
            "issued_at": self.issued_at,
        }


@dataclass(frozen=True, slots=True)
class SettlementProof:
    """A settled payment the callback never delivered, as the payment event it would have
    been. The stage sends `event.to_dict()` to the order stage's payment input, keyed by
    order id, so the credit takes the one path (and the one entry id) every credit takes."""

    event: PaymentEvent
    correlation_id: str | None = None

    @property
    def key(self) -> str:
        return self.event.order_id


@dataclass(frozen=True, slots=True)
class ReconOutcome:
    """One reconciliation decision, for the mismatch-rate stage (key: provider): a break
    (`category` set), or the match of a transaction that had none (`category` None)."""

    order_id: str
    provider: str
    decided_at: int
    category: ReconCategory | None

    @property
    def key(self) -> str:
        return self.provider

    @property
    def is_break(self) -> bool:
        return self.category is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "provider": self.provider,
            "decided_at": self.decided_at,
            "category": None if self.category is None else self.category.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReconOutcome:
        category = data.get("category")
        return cls(
            order_id=data["order_id"],
            provider=data["provider"],
            decided_at=data["decided_at"],
            category=None if category is None else ReconCategory(category),
        )
