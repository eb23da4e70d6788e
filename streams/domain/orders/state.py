"""The per-order state kept in a table keyed by order_id, and the status derived from it.

Status is a function of the facts (`derive_status`) rather than something handlers set,
so it can never disagree with them: e.g. ON_HOLD exactly while a hold reason remains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.domain.common.evolve import init_fields
from streams.domain.common.ids import entry_id
from streams.domain.common.payments import PaymentEvent
from streams.domain.orders.inputs import OrderEvent, RiskVerdict


class OrderStatus(StrEnum):
    CREATED = "CREATED"
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAYMENT_CONFIRMED = "PAYMENT_CONFIRMED"
    CREDITED = "CREDITED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    ON_HOLD = "ON_HOLD"
    REFUND_IN_PROGRESS = "REFUND_IN_PROGRESS"
    REFUNDED = "REFUNDED"
    # The credit was reversed by an operator; a contract addition, OrderStatus v2.
    REVERSED = "REVERSED"


class HoldReason(StrEnum):
    MISMATCH = "MISMATCH"  # the payment differs from the order
    RISK_REVIEW = "RISK_REVIEW"
    RISK_BLOCK = "RISK_BLOCK"
    STEP_UP = "STEP_UP"
    LATE_PAYMENT = "LATE_PAYMENT"  # money arrived after the order was cancelled or failed
    CREDIT_FREEZE = "CREDIT_FREEZE"
    REFUND_FREEZE = "REFUND_FREEZE"


# The holds a reviewer's decision resolves; freezes and step-up clear by other means.
REVIEWABLE = frozenset(
    {HoldReason.MISMATCH, HoldReason.RISK_REVIEW, HoldReason.RISK_BLOCK, HoldReason.LATE_PAYMENT}
)


class RefundState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What CREATED locked in; never changes afterwards."""

    account_id: str
    user_id: str
    amount_minor: int
    currency: str
    provider: str
    merchant_id: str
    app_id: str | None
    promo_id: str | None
    promo_bonus_minor: int
    correlation_id: str | None

    @classmethod
    def from_event(cls, event: OrderEvent, correlation_id: str | None) -> OrderFacts:
        return cls(
            account_id=event.account_id,
            user_id=event.user_id,
            amount_minor=event.amount_minor,
            currency=event.currency,
            provider=event.provider,
            merchant_id=event.merchant_id,
            app_id=event.app_id,
            promo_id=event.promo_id,
            promo_bonus_minor=event.promo_bonus_minor,
            correlation_id=correlation_id,
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in init_fields(type(self))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrderFacts:
        return cls(**{name: data[name] for name in init_fields(cls)})


@dataclass(frozen=True, slots=True)
class HeldPayment:
    """A payment event that arrived before its order, kept until CREATED comes."""

    event: PaymentEvent
    arrived_at: int
    correlation_id: str | None
    orphan_alerted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event.to_dict(),
            "arrived_at": self.arrived_at,
            "correlation_id": self.correlation_id,
            "orphan_alerted": self.orphan_alerted,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeldPayment:
        return cls(
            event=PaymentEvent.from_dict(dict(data["event"])),
            arrived_at=data["arrived_at"],
            correlation_id=data["correlation_id"],
            orphan_alerted=data["orphan_alerted"],
        )


@dataclass(frozen=True, slots=True)
class Payment:
    """The order's payment: the first success that arrived for it."""

    external_txn_id: str
    event_id: str
    provider: str
    amount_minor: int
    currency: str

    @classmethod
    def from_event(cls, event: PaymentEvent) -> Payment:
        return cls(
            external_txn_id=event.external_txn_id,
            event_id=event.event_id,
            provider=event.provider,
            amount_minor=event.amount_minor,
            currency=event.currency,
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in init_fields(type(self))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Payment:
        return cls(**{name: data[name] for name in init_fields(cls)})


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    amount_minor: int
    state: RefundState

    def to_dict(self) -> dict[str, Any]:
        return {
            "refund_id": self.refund_id,
            "amount_minor": self.amount_minor,
            "state": self.state.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Refund:
        return cls(data["refund_id"], data["amount_minor"], RefundState(data["state"]))


@dataclass(frozen=True, slots=True)
class OrderState:
    order_id: str
    status: OrderStatus | None = None  # None: no CREATED seen yet
    version: int = 0
    facts: OrderFacts | None = None
    payment_initiated: bool = False
    step_up_completed: bool = False
    payment: Payment | None = None
    # Further successes with other external txn ids: the customer was charged twice.
    extra_txn_ids: frozenset[str] = frozenset()
    review_approved: bool = False
    closed: OrderStatus | None = None  # CANCELED or FAILED once the order ended unpaid
    risk: RiskVerdict | None = None
    hold_reasons: frozenset[HoldReason] = frozenset()
    refunds: tuple[Refund, ...] = ()
    held_payments: tuple[HeldPayment, ...] = ()
    seen_order_events: frozenset[str] = frozenset()
    seen_payment_events: frozenset[tuple[str, str]] = frozenset()  # (provider, event_id)
    # The idempotency guard: a ledger entry id in here is never emitted again.
    emitted_entry_ids: frozenset[str] = frozenset()

    @property
    def credit_entry_id(self) -> str | None:
        if self.payment is None:
            return None
        return entry_id(self.order_id, "CREDIT", self.payment.external_txn_id, None)

    @property
    def credited(self) -> bool:
        return self.credit_entry_id in self.emitted_entry_ids

    @property
    def reversal_entry_id(self) -> str | None:
        """The one REVERSAL this order's credit can have: derived like every entry id, so
        it is booked once however many times it is asked for."""
        if self.payment is None:
            return None
        return entry_id(self.order_id, "REVERSAL", self.payment.external_txn_id, None)

    @property
    def reversed(self) -> bool:
        return self.reversal_entry_id in self.emitted_entry_ids

    @property
    def received_txn_ids(self) -> frozenset[str]:
        """External txn ids of every payment success this order has taken in."""
        if self.payment is None:
            return self.extra_txn_ids
        return self.extra_txn_ids | {self.payment.external_txn_id}

    def wake_at(self, orphan_hold_ms: int) -> int | None:
        """When event time next decides something for this order with no input: the
        earliest held payment not yet alerted becomes an orphan once event time is past
        its arrival plus the hold (`orders._raise_orphan_alerts`). None: never."""
        waiting = [h.arrived_at for h in self.held_payments if not h.orphan_alerted]
        return min(waiting) + orphan_hold_ms + 1 if waiting else None

    @property
    def refund_in_flight(self) -> Refund | None:
        return next((r for r in self.refunds if r.state is RefundState.IN_PROGRESS), None)

    @property
    def refunded_minor(self) -> int:
        return sum(r.amount_minor for r in self.refunds if r.state is RefundState.SUCCEEDED)

    @property
    def refundable_minor(self) -> int:
        """Paid and credited money not yet refunded nor being refunded."""
        if self.payment is None or not self.credited:
            return 0
        in_flight = self.refund_in_flight
        reserved = self.refunded_minor + (in_flight.amount_minor if in_flight else 0)
        return self.payment.amount_minor - reserved

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-safe form: fields at their default are left out."""
        data: dict[str, Any] = {"order_id": self.order_id}
        optional: dict[str, Any] = {
            "status": self.status and self.status.value,
            "version": self.version,
            "facts": self.facts and self.facts.to_dict(),
            "payment_initiated": self.payment_initiated,
            "step_up_completed": self.step_up_completed,
            "payment": self.payment and self.payment.to_dict(),
            "extra_txn_ids": sorted(self.extra_txn_ids),
            "review_approved": self.review_approved,
            "closed": self.closed and self.closed.value,
            "risk": self.risk and self.risk.to_dict(),
            "hold_reasons": sorted(self.hold_reasons),
            "refunds": [refund.to_dict() for refund in self.refunds],
            "held_payments": [held.to_dict() for held in self.held_payments],
            "seen_order_events": sorted(self.seen_order_events),
            "seen_payment_events": [list(key) for key in sorted(self.seen_payment_events)],
            "emitted_entry_ids": sorted(self.emitted_entry_ids),
        }
        data.update((key, value) for key, value in optional.items() if value)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrderState:
        def optional(name: str, build: Any) -> Any:
            value = data.get(name)
            return None if value is None else build(value)

        return cls(
            order_id=data["order_id"],
            status=optional("status", OrderStatus),
            version=data.get("version", 0),
            facts=optional("facts", OrderFacts.from_dict),
            payment_initiated=data.get("payment_initiated", False),
            step_up_completed=data.get("step_up_completed", False),
            payment=optional("payment", Payment.from_dict),
            extra_txn_ids=frozenset(data.get("extra_txn_ids", ())),
            review_approved=data.get("review_approved", False),
            closed=optional("closed", OrderStatus),
            risk=optional("risk", RiskVerdict.from_dict),
            hold_reasons=frozenset(HoldReason(r) for r in data.get("hold_reasons", ())),
            refunds=tuple(Refund.from_dict(r) for r in data.get("refunds", ())),
            held_payments=tuple(HeldPayment.from_dict(h) for h in data.get("held_payments", ())),
            seen_order_events=frozenset(data.get("seen_order_events", ())),
            seen_payment_events=frozenset(
                (provider, event_id) for provider, event_id in data.get("seen_payment_events", ())
            ),
            emitted_entry_ids=frozenset(data.get("emitted_entry_ids", ())),
        )


def derive_status(state: OrderState) -> OrderStatus | None:
    """The status the facts imply; holds win over everything, an end over progress."""
    if state.facts is None:
        return None
    if state.hold_reasons:
        return OrderStatus.ON_HOLD
    if state.closed is not None:
        return state.closed
    if state.refund_in_flight is not None:
        return OrderStatus.REFUND_IN_PROGRESS
    if state.reversed:
        return OrderStatus.REVERSED
    if state.credited:
        fully_refunded = state.payment is not None and (
            state.refunded_minor >= state.payment.amount_minor
        )
        return OrderStatus.REFUNDED if fully_refunded else OrderStatus.CREDITED
    if state.payment is not None:
        return OrderStatus.PAYMENT_CONFIRMED
    if state.payment_initiated:
        return OrderStatus.PENDING_PAYMENT
    return OrderStatus.CREATED
