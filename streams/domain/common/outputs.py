"""What every part of the domain emits besides its own outputs: alerts and audits.

`to_record()` gives the Avro record with the contract's field names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    INFO = "INFO"
    WARN = "WARN"
    PAGE = "PAGE"


@dataclass(frozen=True, slots=True)
class AlertOut:
    """A `topup.alerts` record."""

    alert_id: str
    kind: str
    severity: Severity
    order_id: str | None
    provider: str | None
    details: Mapping[str, str]
    raised_at: int
    correlation_id: str | None = None

    @property
    def key(self) -> str:
        return self.kind

    def to_record(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "kind": str(self.kind),
            "severity": self.severity.value,
            "order_id": self.order_id,
            "provider": self.provider,
            "details": dict(self.details),
            "raised_at": self.raised_at,
        }


@dataclass(frozen=True, slots=True)
class AuditOut:
    """A `topup.audit` record: one for every credit, debit, hold, block, release, refusal."""

    audit_id: str
    subject: str
    # The order machine uses AuditAction, reconciliation its own; both are str enums.
    action: str
    rule: str
    inputs: Mapping[str, str]
    outcome: str
    actor: str | None  # None for an automatic decision, as the schema says
    at: int
    correlation_id: str | None = None

    @property
    def key(self) -> str:
        return self.subject

    def to_record(self) -> dict[str, Any]:
        return {
            "audit_id": self.audit_id,
            "subject": self.subject,
            "action": str(self.action),
            "rule": self.rule,
            "inputs": dict(self.inputs),
            "outcome": self.outcome,
            "actor": self.actor,
            "at": self.at,
        }
