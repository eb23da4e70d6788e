"""What the order state machine consumes: order events, risk verdicts, freeze changes,
event-time ticks (payment events come from `payments.py`), and the context of each call."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.config import PROVIDERS
from streams.domain.common.configured_providers import check_configured
from streams.domain.common.currencies import check_currency
from streams.domain.common.int64 import MAX_AMOUNT_MINOR, check_amount_limit
from streams.domain.common.payments import PaymentEvent
from streams.domain.common.record_fields import optional_text, required_text


class OrderEventType(StrEnum):
    CREATED = "CREATED"
    PAYMENT_INITIATED = "PAYMENT_INITIATED"
    STEP_UP_COMPLETED = "STEP_UP_COMPLETED"
    CANCELED = "CANCELED"
    REFUND_REQUESTED = "REFUND_REQUESTED"
    REVIEW_APPROVED = "REVIEW_APPROVED"
    REVIEW_REJECTED = "REVIEW_REJECTED"
    # An operator's correction (`topup-guard reverse`); a contract addition, OrderEvent v2.
    REVERSAL_REQUESTED = "REVERSAL_REQUESTED"


def _millis(value: Any, name: str) -> int:
    # The codec keeps timestamp-millis as plain int epoch milliseconds.
    if type(value) is not int:
        raise ValueError(f"{name} must be int milliseconds")
    return value


def _amount(value: Any, name: str) -> int:
    # Bounded far below 2**63 so that amount + bonus and any balance stay in range.
    if type(value) is not int or not 0 <= value <= MAX_AMOUNT_MINOR:
        raise ValueError(f"{name} must be an integer in [0, {MAX_AMOUNT_MINOR}]")
    return value


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One record of `topup.orders`, field names as on the wire."""

    event_id: str
    type: OrderEventType
    order_id: str
    occurred_at: int
    account_id: str
    user_id: str
    amount_minor: int
    currency: str
    provider: str
    merchant_id: str
    app_id: str | None = None
    device_id: str | None = None
    ip: str | None = None
    payment_token: str | None = None
    account_created_at: int | None = None
    user_verified: bool = False
    promo_id: str | None = None
    promo_bonus_minor: int = 0
    provider_intent_id: str | None = None
    refund_id: str | None = None
    actor: str | None = None
    entry_id: str | None = None  # REVERSAL_REQUESTED: the CREDIT to reverse
    reason: str | None = None  # REVERSAL_REQUESTED: the operator's why

    def __post_init__(self) -> None:
        # Checked once here so the state machine can trust every field it reads.
        if not isinstance(self.type, OrderEventType):
            raise ValueError("type must be an OrderEventType")
        for name in ("event_id", "order_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        _amount(self.amount_minor, "amount_minor")
        _amount(self.promo_bonus_minor, "promo_bonus_minor")
        if self.type is OrderEventType.CREATED:
            for name in ("account_id", "provider", "merchant_id"):
                if not getattr(self, name):
                    raise ValueError(f"CREATED needs a non-empty {name}")
            if self.amount_minor == 0:
                raise ValueError("CREATED needs a positive amount_minor")
            if self.provider not in PROVIDERS:
                # A payment can only ever arrive through a provider the receiver knows.
                raise ValueError(f"provider {self.provider[:40]!r} is not one of {PROVIDERS}")
        money_moves = self.type in (OrderEventType.CREATED, OrderEventType.REFUND_REQUESTED)
        if money_moves:
            check_currency(self.currency)
        if self.type is OrderEventType.REFUND_REQUESTED and not self.refund_id:
            raise ValueError("REFUND_REQUESTED needs a refund_id")
        if self.type is OrderEventType.REVERSAL_REQUESTED:
            # A correction nobody can account for is not one: who, why and what, always.
            for name in ("entry_id", "actor", "reason"):
                value = getattr(self, name)
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"REVERSAL_REQUESTED needs a non-empty {name}")

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> OrderEvent:
        """Build from a decoded Avro OrderEvent; unknown fields are ignored.

        Raises ValueError when a field is missing or invalid, so the caller can dead-letter.
        """
        try:
            event_type = OrderEventType(record.get("type", ""))
        except ValueError:
            raise ValueError(f"unknown order event type {record.get('type')!r}") from None
        account_created_at = record.get("account_created_at")
        if account_created_at is not None:
            account_created_at = _millis(account_created_at, "account_created_at")
        return cls(
            event_id=required_text(record, "event_id"),
            type=event_type,
            order_id=required_text(record, "order_id"),
            occurred_at=_millis(record.get("occurred_at"), "occurred_at"),
            account_id=optional_text(record, "account_id") or "",
            user_id=optional_text(record, "user_id") or "",
            amount_minor=_amount(record.get("amount_minor"), "amount_minor"),
            currency=optional_text(record, "currency") or "",
            provider=optional_text(record, "provider") or "",
            merchant_id=optional_text(record, "merchant_id") or "",
            app_id=optional_text(record, "app_id"),
            device_id=optional_text(record, "device_id"),
            ip=optional_text(record, "ip"),
            payment_token=optional_text(record, "payment_token"),
            account_created_at=account_created_at,
            user_verified=bool(record.get("user_verified", False)),
            promo_id=optional_text(record, "promo_id"),
            promo_bonus_minor=_amount(record.get("promo_bonus_minor", 0), "promo_bonus_minor"),
            provider_intent_id=optional_text(record, "provider_intent_id"),
            refund_id=optional_text(record, "refund_id"),
            actor=optional_text(record, "actor"),
            entry_id=optional_text(record, "entry_id"),
            reason=optional_text(record, "reason"),
        )


def check_order_amounts(order: OrderEvent, max_amount_minor: int) -> None:
    """The configured bound (TOPUP_MAX_AMOUNT_MINOR), checked where records enter; raises
    AmountOutOfRange."""
    check_amount_limit("amount_minor", order.amount_minor, max_amount_minor)
    check_amount_limit("promo_bonus_minor", order.promo_bonus_minor, max_amount_minor)


def check_order_provider(order: OrderEvent, configured: Collection[str]) -> None:
    """A CREATED order must name a configured provider, the only kind whose payment can
    arrive; raises ProviderNotConfigured. Later events of an order carry no provider."""
    if order.type is OrderEventType.CREATED:
        check_configured("order", order.provider, configured)


class RiskDecision(StrEnum):
    ALLOW = "ALLOW"
    STEP_UP = "STEP_UP"
    REVIEW = "REVIEW"
    BLOCK = "BLOCK"


# The contract's RiskDecision has no field for a withheld promotion bonus; the risk stage
# says so with this reason, which no rule may take as its id.
BONUS_WITHHELD_REASON = "promo_bonus_withheld"


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """The risk stage's decision for one order (a `topup.risk-decisions` record)."""

    order_id: str
    decision: RiskDecision
    score: int
    reasons: tuple[str, ...]
    decided_at: int
    rules_version: str | None = None

    @property
    def bonus_withheld(self) -> bool:
        return BONUS_WITHHELD_REASON in self.reasons

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RiskVerdict:
        try:
            decision = RiskDecision(record.get("decision", ""))
        except ValueError:
            raise ValueError(f"unknown risk decision {record.get('decision')!r}") from None
        return cls(
            order_id=required_text(record, "order_id"),
            decision=decision,
            score=int(record.get("score", 0)),
            reasons=tuple(str(reason) for reason in record.get("reasons") or ()),
            decided_at=_millis(record.get("decided_at"), "decided_at"),
            rules_version=optional_text(record, "rules_version"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "decision": self.decision.value,
            "score": self.score,
            "reasons": list(self.reasons),
            "decided_at": self.decided_at,
            "rules_version": self.rules_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskVerdict:
        return cls.from_record(data)


@dataclass(frozen=True, slots=True)
class FreezeChanged:
    """The stage's notice that this order's freeze status may have changed.

    The booleans themselves travel in `Context`; this only names the command behind it.
    """

    command_id: str


class InputKind(StrEnum):
    """The column of the transition table an input falls into."""

    CREATED = "CREATED"
    PAYMENT_INITIATED = "PAYMENT_INITIATED"
    STEP_UP_COMPLETED = "STEP_UP_COMPLETED"
    CANCELED = "CANCELED"
    REFUND_REQUESTED = "REFUND_REQUESTED"
    REVIEW_APPROVED = "REVIEW_APPROVED"
    REVIEW_REJECTED = "REVIEW_REJECTED"
    REVERSAL_REQUESTED = "REVERSAL_REQUESTED"
    PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    REFUND_SUCCEEDED = "REFUND_SUCCEEDED"
    REFUND_FAILED = "REFUND_FAILED"
    RISK_VERDICT = "RISK_VERDICT"
    FREEZE_CHANGED = "FREEZE_CHANGED"


# Tick is deliberately absent: it is the clock, not a transition.
OrderInput = OrderEvent | PaymentEvent | RiskVerdict | FreezeChanged


def input_kind(event: OrderInput) -> InputKind:
    if isinstance(event, OrderEvent):
        return InputKind(event.type.value)
    if isinstance(event, PaymentEvent):
        return InputKind(event.kind.value)
    if isinstance(event, RiskVerdict):
        return InputKind.RISK_VERDICT
    return InputKind.FREEZE_CHANGED


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What the stage knows besides the state and the event.

    `now_ms` is the event time of the input (never the wall clock); the freeze booleans are
    already resolved against every scope the order belongs to (see `freeze.py`).
    """

    now_ms: int
    credits_frozen: bool
    refunds_frozen: bool
    orphan_hold_ms: int = 15 * 60 * 1000
    correlation_id: str | None = None
    # Off by default so the system works without the risk stage; on, a confirmed payment
    # waits in PAYMENT_CONFIRMED until a verdict arrives.
    require_risk_verdict: bool = False

    def __post_init__(self) -> None:
        if type(self.now_ms) is not int or self.now_ms < 0:
            raise ValueError("now_ms must be non-negative int milliseconds")
        if type(self.orphan_hold_ms) is not int or self.orphan_hold_ms < 0:
            raise ValueError("orphan_hold_ms must be non-negative int milliseconds")
