"""The order state machine: `step(state, event, ctx) -> (new state, outputs)`.

Every input goes through the same four stages:

1. Duplicates (an order event id, provider event id, payment external txn id or settled
   refund id seen before) are ignored with an audit record, before anything else.
2. `TRANSITIONS[(status, input kind)]` picks the handler. A pair not in the table, or a
   handler that raises `Refused`, is refused: ILLEGAL_TRANSITION alert + audit record,
   state unchanged.
3. The status is re-derived from the facts; a change emits a StatusChange (version + 1).
4. Settle: if a confirmed payment is uncredited and nothing holds it, credit it now, or
   hold it with CREDIT_FREEZE when credits are frozen.

A freeze hold lifts only on FREEZE_CHANGED (the stage sends one to each order it holds
when a freeze lifts), so each release happens once, at a point the input log records.

After CREATED, payments that arrived before the order are applied in arrival order. After
every input (and on a Tick) a held orphan payment past the hold window raises
ORPHAN_PAYMENT once. Ids of outputs derive from the input that caused them, and every
output carries `ctx.now_ms`, so a replay reproduces the outputs exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from streams.domain.common.evolve import evolve
from streams.domain.common.ids import IdPart, derived_id, entry_id
from streams.domain.common.outputs import AlertOut, AuditOut, Severity
from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.domain.common.time import Tick
from streams.domain.orders.inputs import (
    Context,
    FreezeChanged,
    InputKind,
    OrderEvent,
    OrderInput,
    RiskDecision,
    RiskVerdict,
    input_kind,
)
from streams.domain.orders.outputs import (
    AlertKind,
    AuditAction,
    LedgerEntryOut,
    LedgerOp,
    LedgerReason,
    Output,
    ReviewCase,
    StatusChange,
)
from streams.domain.orders.state import (
    REVIEWABLE,
    HeldPayment,
    HoldReason,
    OrderFacts,
    OrderState,
    OrderStatus,
    Payment,
    Refund,
    RefundState,
    derive_status,
)
from streams.domain.orders.validation import Mismatch, payment_mismatches, refund_mismatches

NO_ORDER: Final = None  # the row key for a state that has seen no CREATED yet


class Rule(StrEnum):
    """Names the rule behind each audit record."""

    TRANSITIONS = "order.transitions"
    DEDUP = "order.dedup"
    HOLD_UNTIL_CREATED = "order.hold-until-created"
    HOLD_UNTIL_REFUND_REQUEST = "order.hold-until-refund-request"
    ORPHAN_PAYMENT = "order.orphan-payment"
    VALIDATE_PAYMENT = "order.validate-payment"
    DOUBLE_CHARGE = "order.double-charge"
    LATE_PAYMENT = "order.late-payment"
    RISK_GATE = "order.risk-gate"
    STEP_UP = "order.step-up"
    REVIEW = "order.review"
    FREEZE = "order.freeze"
    ORDER_ENDED = "order.ended"
    STALE_EVENT = "order.stale-event"
    CREDIT = "order.credit"
    REFUND = "order.refund"
    REVERSAL = "order.reversal"


class Refused(Exception):
    """Raised by a handler when its row applies but this particular input may not."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Effects:
    """Collects one step's outputs, stamping each with event time, a correlation id and
    an id derived from the input that caused it."""

    def __init__(self, state: OrderState, ctx: Context) -> None:
        self.order_id = state.order_id
        self.ctx = ctx
        self.order_correlation_id = state.facts.correlation_id if state.facts else None
        self.input_correlation_id = ctx.correlation_id
        self.outputs: list[Output] = []
        self._cause: tuple[IdPart, ...] = ()
        self._issued: Counter[tuple[IdPart, ...]] = Counter()

    @property
    def now(self) -> int:
        return self.ctx.now_ms

    @property
    def correlation_id(self) -> str | None:
        return self.input_correlation_id or self.order_correlation_id

    def handling(self, cause: tuple[IdPart, ...], correlation_id: str | None) -> None:
        self._cause = cause
        self.input_correlation_id = correlation_id

    def _next_id(self, prefix: str, *parts: IdPart) -> str:
        # The sequence number separates two outputs of the same kind from one cause.
        key = (prefix, *self._cause, *parts)
        sequence = self._issued[key]
        self._issued[key] += 1
        return derived_id(prefix, self.order_id, *self._cause, *parts, sequence)

    def emit(self, output: Output) -> None:
        self.outputs.append(output)

    def alert(
        self, kind: AlertKind, severity: Severity, provider: str | None, details: dict[str, str]
    ) -> None:
        self.emit(
            AlertOut(
                alert_id=self._next_id("al", kind.value),
                kind=kind.value,
                severity=severity,
                order_id=self.order_id,
                provider=provider,
                details=details,
                raised_at=self.now,
                correlation_id=self.correlation_id,
            )
        )

    def audit(
        self,
        action: AuditAction,
        rule: Rule,
        inputs: dict[str, str],
        outcome: str,
        actor: str | None = None,
    ) -> None:
        self.emit(
            AuditOut(
                audit_id=self._next_id("au", action.value),
                subject=self.order_id,
                action=action,
                rule=rule.value,
                inputs=inputs,
                outcome=outcome,
                actor=actor,
                at=self.now,
                correlation_id=self.correlation_id,
            )
        )

    def review(self, reason: str, provider: str | None, evidence: dict[str, str]) -> None:
        self.emit(
            ReviewCase(
                case_id=self._next_id("rc", reason),
                order_id=self.order_id,
                provider=provider,
                reason=reason,
                evidence=evidence,
                opened_at=self.now,
                correlation_id=self.correlation_id,
            )
        )

    def mark(self) -> int:
        return len(self.outputs)

    def rollback(self, mark: int) -> None:
        del self.outputs[mark:]


# --- small helpers -------------------------------------------------------------------


def _facts(state: OrderState) -> OrderFacts:
    if state.facts is None:
        raise AssertionError("the transition table only routes here once CREATED is seen")
    return state.facts


def _payment(state: OrderState) -> Payment:
    if state.payment is None:
        raise AssertionError("the transition table only routes here once money arrived")
    return state.payment


def _payment_details(event: PaymentEvent) -> dict[str, str]:
    return {
        "kind": event.kind.value,
        "provider": event.provider,
        "event_id": event.event_id,
        "external_txn_id": event.external_txn_id,
        "amount_minor": str(event.amount_minor),
        "currency": event.currency,
    }


def _evidence(mismatches: list[Mismatch], event: PaymentEvent) -> dict[str, str]:
    evidence = _payment_details(event)
    for mismatch in mismatches:
        evidence[f"expected.{mismatch.field}"] = mismatch.expected
        evidence[f"actual.{mismatch.field}"] = mismatch.actual
    return evidence


def _raise_mismatches(
    mismatches: list[Mismatch], event: PaymentEvent, fx: _Effects
) -> dict[str, str]:
    for mismatch in mismatches:
        details = {"field": mismatch.field, "expected": mismatch.expected}
        details |= {"actual": mismatch.actual, "event_id": event.event_id}
        fx.alert(mismatch.alert_kind, Severity.WARN, event.provider, details)
    return _evidence(mismatches, event)


def _hold(
    state: OrderState,
    fx: _Effects,
    reason: HoldReason,
    rule: Rule,
    inputs: dict[str, str],
    action: AuditAction = AuditAction.HOLD,
) -> OrderState:
    fx.audit(action, rule, inputs | {"hold": reason.value}, f"ON_HOLD:{reason.value}")
    return evolve(state, hold_reasons=state.hold_reasons | {reason})


def _release(
    state: OrderState,
    fx: _Effects,
    reasons: frozenset[HoldReason],
    rule: Rule,
    actor: str | None = None,
) -> OrderState:
    for reason in sorted(reasons):
        fx.audit(AuditAction.RELEASE, rule, {"hold": reason.value}, f"RELEASED:{reason}", actor)
    return evolve(state, hold_reasons=state.hold_reasons - reasons)


_BOOKED_AS: Final = {
    LedgerOp.CREDIT: AuditAction.CREDIT,
    LedgerOp.DEBIT: AuditAction.DEBIT,
    LedgerOp.REVERSAL: AuditAction.REVERSAL,
}


def _book(
    state: OrderState,
    entry: LedgerEntryOut,
    fx: _Effects,
    rule: Rule,
    inputs: dict[str, str],
    actor: str | None = None,
) -> OrderState:
    """The one place a ledger entry is emitted, and the idempotency guard: an entry id
    this order already booked is never emitted again, whichever path asks for it."""
    inputs = inputs | {"entry_id": entry.entry_id, "amount_minor": str(entry.amount_minor)}
    if entry.entry_id in state.emitted_entry_ids:
        fx.audit(AuditAction.DUPLICATE_IGNORED, rule, inputs, "ALREADY_BOOKED", actor)
        return state
    fx.emit(entry)
    fx.audit(_BOOKED_AS[entry.op], rule, inputs, "BOOKED", actor)
    return evolve(state, emitted_entry_ids=state.emitted_entry_ids | {entry.entry_id})


# --- handlers: one per kind of change; the table below says where each applies ---------


def _create(state: OrderState, event: OrderEvent, fx: _Effects) -> OrderState:
    # Without a correlation id on CREATED, the earliest held payment's one is the order's.
    held_ids = (held.correlation_id for held in state.held_payments if held.correlation_id)
    facts = OrderFacts.from_event(event, fx.input_correlation_id or next(held_ids, None))
    fx.order_correlation_id = facts.correlation_id
    state = evolve(state, facts=facts)
    return state if state.risk is None else _apply_risk(state, state.risk, fx)


def _hold_until_order(state: OrderState, event: PaymentEvent, fx: _Effects) -> OrderState:
    fx.audit(AuditAction.HOLD, Rule.HOLD_UNTIL_CREATED, _payment_details(event), "HELD_UNTIL_ORDER")
    held = HeldPayment(event, arrived_at=fx.now, correlation_id=fx.input_correlation_id)
    return evolve(state, held_payments=(*state.held_payments, held))


def _hold_until_refund_request(
    state: OrderState, event: PaymentEvent, fx: _Effects
) -> OrderState:
    # The provider's answer can be processed before our own request: the two travel on
    # different topics (certainly so in a replay). Money that left must not be refused.
    fx.audit(
        AuditAction.HOLD, Rule.HOLD_UNTIL_REFUND_REQUEST, _payment_details(event),
        "HELD_UNTIL_REFUND_REQUEST",
    )
    held = HeldPayment(event, arrived_at=fx.now, correlation_id=fx.input_correlation_id)
    return evolve(state, held_payments=(*state.held_payments, held))


def _record_verdict(state: OrderState, verdict: RiskVerdict, fx: _Effects) -> OrderState:
    if state.risk is not None:
        return _ignore_verdict(state, verdict, fx)
    fx.audit(AuditAction.RISK_VERDICT, Rule.RISK_GATE, _verdict_details(verdict), "RECORDED")
    return evolve(state, risk=verdict)


def _initiate(state: OrderState, event: OrderEvent, fx: _Effects) -> OrderState:
    if state.payment is not None:
        raise Refused("payment already received")
    return evolve(state, payment_initiated=True)


def _accept_payment(state: OrderState, event: PaymentEvent, fx: _Effects) -> OrderState:
    if state.payment is not None:
        return _second_payment(state, event, fx)
    return _take_payment(state, event, fx)


def _take_payment(state: OrderState, event: PaymentEvent, fx: _Effects) -> OrderState:
    """Record the order's payment; hold it if it disagrees with the order."""
    state = evolve(state, payment=Payment.from_event(event))
    mismatches = payment_mismatches(state.order_id, _facts(state), event)
    if mismatches:
        evidence = _raise_mismatches(mismatches, event, fx)
        state = _hold(state, fx, HoldReason.MISMATCH, Rule.VALIDATE_PAYMENT, evidence)
        fx.review("PAYMENT_MISMATCH", event.provider, evidence)
    if HoldReason.RISK_BLOCK in state.hold_reasons:
        _paid_while_blocked(state, fx)
    return state


def _paid_while_blocked(state: OrderState, fx: _Effects) -> None:
    payment = _payment(state)
    details = {
        "external_txn_id": payment.external_txn_id,
        "amount_minor": str(payment.amount_minor),
    }
    fx.alert(AlertKind.PAID_WHILE_BLOCKED, Severity.PAGE, payment.provider, details)
    fx.audit(AuditAction.BLOCK, Rule.RISK_GATE, details, "NOT_CREDITED:BLOCKED")


def _late_payment(state: OrderState, event: PaymentEvent, fx: _Effects) -> OrderState:
    """Money for an order that already ended unpaid: never credit it without a reviewer."""
    if state.payment is not None:
        return _second_payment(state, event, fx)
    ended = str(state.status)
    state = _take_payment(state, event, fx)
    details = _payment_details(event) | {"order_status": ended}
    fx.alert(AlertKind.LATE_PAYMENT, Severity.WARN, event.provider, details)
    fx.review("LATE_PAYMENT", event.provider, details)
    return _hold(state, fx, HoldReason.LATE_PAYMENT, Rule.LATE_PAYMENT, details)


def _second_payment(state: OrderState, event: PaymentEvent, fx: _Effects) -> OrderState:
    """A success with another external txn id: the customer paid twice. Never credited."""
    details = _payment_details(event) | {"credited_txn_id": _payment(state).external_txn_id}
    fx.alert(AlertKind.DUPLICATE_PAYMENT, Severity.WARN, event.provider, details)
    fx.audit(AuditAction.HOLD, Rule.DOUBLE_CHARGE, details, "NOT_CREDITED:REVIEW_CASE")
    fx.review("DUPLICATE_PAYMENT", event.provider, details)
    return evolve(state, extra_txn_ids=state.extra_txn_ids | {event.external_txn_id})


def _fail_payment(state: OrderState, event: PaymentEvent, fx: _Effects) -> OrderState:
    if state.payment is not None:
        return _ignore_stale(state, event, fx)
    return _close(state, fx, OrderStatus.FAILED)


def _ignore_stale(state: OrderState, event: PaymentEvent, fx: _Effects) -> OrderState:
    # A failure reordered behind a success, or after the order ended: it changes nothing.
    fx.audit(AuditAction.IGNORED, Rule.STALE_EVENT, _payment_details(event), "IGNORED")
    return state


def _cancel(state: OrderState, event: OrderEvent, fx: _Effects) -> OrderState:
    if state.payment is not None:
        raise Refused("money already received: refund or review it instead")
    return _close(state, fx, OrderStatus.CANCELED)


def _close(state: OrderState, fx: _Effects, status: OrderStatus) -> OrderState:
    state = _release(state, fx, state.hold_reasons, Rule.ORDER_ENDED)
    return evolve(state, closed=status)


def _complete_step_up(state: OrderState, event: OrderEvent, fx: _Effects) -> OrderState:
    if state.credited:
        raise Refused("step-up completed after the order was credited")
    # Remembered so a STEP_UP verdict that arrives after the completion holds nothing.
    state = evolve(state, step_up_completed=True)
    if HoldReason.STEP_UP not in state.hold_reasons:
        return state
    return _release(state, fx, frozenset({HoldReason.STEP_UP}), Rule.STEP_UP)


def _approve_review(state: OrderState, event: OrderEvent, fx: _Effects) -> OrderState:
    reviewable = state.hold_reasons & REVIEWABLE
    if not reviewable:
        raise Refused("no review pending")
    state = _release(state, fx, reviewable, Rule.REVIEW, event.actor)
    # Approval also revives an order that had ended before its late payment arrived.
    return evolve(state, review_approved=True, closed=None)


def _reject_review(state: OrderState, event: OrderEvent, fx: _Effects) -> OrderState:
    if not state.hold_reasons & REVIEWABLE:
        raise Refused("no review pending")
    inputs = {"holds": ",".join(sorted(state.hold_reasons))}
    if state.payment is not None:
        # Money that arrived but will never be credited: someone has to return it.
        inputs["uncredited_paid_minor"] = str(state.payment.amount_minor)
        inputs["external_txn_id"] = state.payment.external_txn_id
    ended = state.closed or OrderStatus.FAILED
    fx.audit(AuditAction.REVIEW_REJECTED, Rule.REVIEW, inputs, ended.value, event.actor)
    return evolve(state, hold_reasons=frozenset(), closed=ended)


def _verdict_details(verdict: RiskVerdict) -> dict[str, str]:
    return {
        "decision": verdict.decision.value,
        "score": str(verdict.score),
        "reasons": ",".join(verdict.reasons),
        "decided_at": str(verdict.decided_at),
        "rules_version": verdict.rules_version or "",
    }


def _apply_verdict(state: OrderState, verdict: RiskVerdict, fx: _Effects) -> OrderState:
    if state.risk is not None:
        return _ignore_verdict(state, verdict, fx)
    state = evolve(state, risk=verdict)
    # An order that ended unpaid can change no more; one holding a late payment still can.
    if state.credited or (state.closed is not None and not state.hold_reasons):
        return _late_verdict(state, verdict, fx)
    return _apply_risk(state, verdict, fx)


# decision -> (hold it puts on the order, audit action); ALLOW puts none.
_VERDICT_HOLDS: Final = {
    RiskDecision.STEP_UP: (HoldReason.STEP_UP, AuditAction.RISK_VERDICT),
    RiskDecision.REVIEW: (HoldReason.RISK_REVIEW, AuditAction.RISK_VERDICT),
    RiskDecision.BLOCK: (HoldReason.RISK_BLOCK, AuditAction.BLOCK),
}


def _apply_risk(state: OrderState, verdict: RiskVerdict, fx: _Effects) -> OrderState:
    details = _verdict_details(verdict)
    hold = _VERDICT_HOLDS.get(verdict.decision)
    # A step-up the customer already completed has nothing left to hold.
    if hold is None or (hold[0] is HoldReason.STEP_UP and state.step_up_completed):
        fx.audit(AuditAction.RISK_VERDICT, Rule.RISK_GATE, details, "ALLOWED")
        return state
    reason, action = hold
    state = _hold(state, fx, reason, Rule.RISK_GATE, details, action)
    if reason is HoldReason.RISK_BLOCK and state.payment is not None:
        _paid_while_blocked(state, fx)
    return state


def _late_verdict(state: OrderState, verdict: RiskVerdict, fx: _Effects) -> OrderState:
    """A verdict after the money was credited (or the order ended) can change nothing."""
    details = _verdict_details(verdict) | {"order_status": str(state.status)}
    if state.credited and verdict.decision in (RiskDecision.REVIEW, RiskDecision.BLOCK):
        fx.alert(AlertKind.RISK_AFTER_CREDIT, Severity.WARN, _facts(state).provider, details)
    fx.audit(AuditAction.IGNORED, Rule.RISK_GATE, details, "TOO_LATE")
    return state


def _ignore_verdict(state: OrderState, verdict: RiskVerdict, fx: _Effects) -> OrderState:
    # The first verdict stands, so a re-scored or replayed one cannot reopen a review.
    action = AuditAction.DUPLICATE_IGNORED if verdict == state.risk else AuditAction.IGNORED
    fx.audit(action, Rule.RISK_GATE, _verdict_details(verdict), "FIRST_VERDICT_STANDS")
    return state


def _lift_freezes(state: OrderState, event: FreezeChanged, fx: _Effects) -> OrderState:
    lifted = {
        reason
        for reason, frozen in (
            (HoldReason.CREDIT_FREEZE, fx.ctx.credits_frozen),
            (HoldReason.REFUND_FREEZE, fx.ctx.refunds_frozen),
        )
        if reason in state.hold_reasons and not frozen
    }
    return _release(state, fx, frozenset(lifted), Rule.FREEZE)


def _request_refund(state: OrderState, event: OrderEvent, fx: _Effects) -> OrderState:
    payment = _payment(state)
    refund_id = event.refund_id
    if refund_id is None:
        raise AssertionError("OrderEvent refuses a REFUND_REQUESTED without a refund_id")
    if any(refund.refund_id == refund_id for refund in state.refunds):
        raise Refused(f"refund id {refund_id} already used")
    if event.currency != payment.currency:
        raise Refused(f"refund currency {event.currency} differs from payment {payment.currency}")
    if not 0 < event.amount_minor <= state.refundable_minor:
        raise Refused(
            f"refund of {event.amount_minor} is not within the {state.refundable_minor} refundable"
        )
    refund = Refund(refund_id, event.amount_minor, RefundState.IN_PROGRESS)
    state = evolve(state, refunds=(*state.refunds, refund))
    inputs = {"refund_id": refund_id, "amount_minor": str(event.amount_minor)}
    fx.audit(AuditAction.REFUND_ACCEPTED, Rule.REFUND, inputs, "REFUND_IN_PROGRESS", event.actor)
    if fx.ctx.refunds_frozen:
        return _hold(state, fx, HoldReason.REFUND_FREEZE, Rule.FREEZE, inputs)
    return state


def _refund_in_flight(state: OrderState, event: PaymentEvent) -> Refund:
    refund = state.refund_in_flight
    if refund is None or refund.refund_id != event.refund_id:
        raise Refused(f"no refund {event.refund_id} in progress")
    return refund


def _finish_refund(
    state: OrderState, refund: Refund, outcome: RefundState, fx: _Effects
) -> OrderState:
    refunds = tuple(
        evolve(r, state=outcome) if r.refund_id == refund.refund_id else r for r in state.refunds
    )
    state = evolve(state, refunds=refunds)
    # A freeze was holding back this refund; with the refund over it has nothing to hold.
    held_back = state.hold_reasons & {HoldReason.REFUND_FREEZE}
    return _release(state, fx, held_back, Rule.REFUND)


def _settle_refund(state: OrderState, event: PaymentEvent, fx: _Effects) -> OrderState:
    refund = _refund_in_flight(state, event)
    payment = _payment(state)
    mismatches = refund_mismatches(refund, payment, event)
    if mismatches:
        # Not debited: the ledger records only the refund that was asked for.
        evidence = _raise_mismatches(mismatches, event, fx)
        fx.audit(AuditAction.HOLD, Rule.REFUND, evidence, "NOT_DEBITED:REVIEW_CASE")
        fx.review("REFUND_MISMATCH", event.provider, evidence)
        return state
    debit = LedgerEntryOut(
        entry_id=entry_id(
            state.order_id, LedgerOp.DEBIT, payment.external_txn_id, refund.refund_id
        ),
        op=LedgerOp.DEBIT,
        account_id=_facts(state).account_id,
        order_id=state.order_id,
        amount_minor=refund.amount_minor,
        bonus_minor=0,
        currency=payment.currency,
        provider=payment.provider,
        external_txn_id=payment.external_txn_id,
        refund_id=refund.refund_id,
        reason=LedgerReason.REFUND,
        caused_by=event.event_id,
        created_at=fx.now,
        correlation_id=fx.correlation_id,
    )
    state = _book(state, debit, fx, Rule.REFUND, _payment_details(event))
    return _finish_refund(state, refund, RefundState.SUCCEEDED, fx)


def _fail_refund(state: OrderState, event: PaymentEvent, fx: _Effects) -> OrderState:
    refund = _refund_in_flight(state, event)
    fx.audit(AuditAction.REFUND_FAILED, Rule.REFUND, _payment_details(event), "NOT_DEBITED")
    return _finish_refund(state, refund, RefundState.FAILED, fx)


def _reverse(state: OrderState, event: OrderEvent, fx: _Effects) -> OrderState:
    """An operator's correction of a wrong credit: one REVERSAL of exactly what the credit
    put on the account (amount and bonus), with the id derived from the credit's payment,
    so it is booked once whatever the number of requests."""
    payment = _payment(state)
    inputs = {
        "reversed_entry_id": event.entry_id or "",
        "reason": event.reason or "",
        "request": event.event_id,
    }
    if state.reversed:
        # Not an illegal move, only a repeated wish: audited, no alert.
        fx.audit(AuditAction.IGNORED, Rule.REVERSAL, inputs, "ALREADY_REVERSED", event.actor)
        return state
    if event.entry_id != state.credit_entry_id or not state.credited:
        raise Refused(f"entry {event.entry_id} is not the credit of order {state.order_id}")
    if state.refunded_minor:
        # Reversing the whole credit would take the refunded part back a second time.
        raise Refused(
            f"{state.refunded_minor} of the credit was already refunded: reverse it by hand"
        )
    bonus, _ = _bonus(state)
    reversal = _payment_entry(state, LedgerOp.REVERSAL, LedgerReason.OPERATOR_REVERSAL,
                              bonus, event.event_id, fx)
    inputs |= {"bonus_minor": str(bonus), "currency": payment.currency}
    return _book(state, reversal, fx, Rule.REVERSAL, inputs, event.actor)


def _unchanged(state: OrderState, event: OrderInput, fx: _Effects) -> OrderState:
    return state


# --- the transition table ------------------------------------------------------------

Handler = Callable[[OrderState, Any, _Effects], OrderState]


@dataclass(frozen=True, slots=True)
class Transition:
    handler: Handler
    # Every status the order can be in once the input (and the settle stage) is done.
    leads_to: frozenset[OrderStatus | None]


def _to(handler: Handler, *leads_to: OrderStatus | None) -> Transition:
    return Transition(handler, frozenset(leads_to))


S = OrderStatus
K = InputKind

TRANSITIONS: Final[Mapping[tuple[OrderStatus | None, InputKind], Transition]] = MappingProxyType(
    {
        # No CREATED yet: money and verdicts wait for the order.
        (NO_ORDER, K.CREATED): _to(_create, S.CREATED, S.ON_HOLD),
        (NO_ORDER, K.PAYMENT_SUCCEEDED): _to(_hold_until_order, NO_ORDER),
        (NO_ORDER, K.PAYMENT_FAILED): _to(_hold_until_order, NO_ORDER),
        (NO_ORDER, K.REFUND_SUCCEEDED): _to(_hold_until_order, NO_ORDER),
        (NO_ORDER, K.REFUND_FAILED): _to(_hold_until_order, NO_ORDER),
        (NO_ORDER, K.RISK_VERDICT): _to(_record_verdict, NO_ORDER),
        (NO_ORDER, K.FREEZE_CHANGED): _to(_unchanged, NO_ORDER),
        # CREATED: waiting for the customer to pay; a payment may come without an intent.
        (S.CREATED, K.PAYMENT_INITIATED): _to(_initiate, S.PENDING_PAYMENT),
        (S.CREATED, K.PAYMENT_SUCCEEDED): _to(
            _accept_payment, S.PAYMENT_CONFIRMED, S.CREDITED, S.ON_HOLD
        ),
        (S.CREATED, K.PAYMENT_FAILED): _to(_fail_payment, S.FAILED),
        (S.CREATED, K.CANCELED): _to(_cancel, S.CANCELED),
        (S.CREATED, K.STEP_UP_COMPLETED): _to(_complete_step_up, S.CREATED),
        (S.CREATED, K.RISK_VERDICT): _to(_apply_verdict, S.CREATED, S.ON_HOLD),
        (S.CREATED, K.FREEZE_CHANGED): _to(_unchanged, S.CREATED),
        # PENDING_PAYMENT: the provider has an intent; the same as CREATED otherwise.
        (S.PENDING_PAYMENT, K.PAYMENT_INITIATED): _to(_initiate, S.PENDING_PAYMENT),
        (S.PENDING_PAYMENT, K.PAYMENT_SUCCEEDED): _to(
            _accept_payment, S.PAYMENT_CONFIRMED, S.CREDITED, S.ON_HOLD
        ),
        (S.PENDING_PAYMENT, K.PAYMENT_FAILED): _to(_fail_payment, S.FAILED),
        (S.PENDING_PAYMENT, K.CANCELED): _to(_cancel, S.CANCELED),
        (S.PENDING_PAYMENT, K.STEP_UP_COMPLETED): _to(_complete_step_up, S.PENDING_PAYMENT),
        (S.PENDING_PAYMENT, K.RISK_VERDICT): _to(_apply_verdict, S.PENDING_PAYMENT, S.ON_HOLD),
        (S.PENDING_PAYMENT, K.FREEZE_CHANGED): _to(_unchanged, S.PENDING_PAYMENT),
        # PAYMENT_CONFIRMED: paid and valid, waiting for a required risk verdict.
        (S.PAYMENT_CONFIRMED, K.PAYMENT_SUCCEEDED): _to(_second_payment, S.PAYMENT_CONFIRMED),
        (S.PAYMENT_CONFIRMED, K.PAYMENT_FAILED): _to(_ignore_stale, S.PAYMENT_CONFIRMED),
        (S.PAYMENT_CONFIRMED, K.STEP_UP_COMPLETED): _to(_complete_step_up, S.PAYMENT_CONFIRMED),
        (S.PAYMENT_CONFIRMED, K.RISK_VERDICT): _to(_apply_verdict, S.CREDITED, S.ON_HOLD),
        (S.PAYMENT_CONFIRMED, K.FREEZE_CHANGED): _to(_unchanged, S.PAYMENT_CONFIRMED),
        # ON_HOLD: at least one hold reason; the last one to clear releases the order.
        (S.ON_HOLD, K.PAYMENT_INITIATED): _to(_initiate, S.ON_HOLD),
        (S.ON_HOLD, K.PAYMENT_SUCCEEDED): _to(_accept_payment, S.ON_HOLD),
        (S.ON_HOLD, K.PAYMENT_FAILED): _to(_fail_payment, S.ON_HOLD, S.FAILED),
        (S.ON_HOLD, K.CANCELED): _to(_cancel, S.CANCELED),
        (S.ON_HOLD, K.STEP_UP_COMPLETED): _to(
            _complete_step_up, S.ON_HOLD, S.CREATED, S.PENDING_PAYMENT, S.CREDITED
        ),
        (S.ON_HOLD, K.REVIEW_APPROVED): _to(
            _approve_review,
            S.ON_HOLD,
            S.CREATED,
            S.PENDING_PAYMENT,
            S.PAYMENT_CONFIRMED,
            S.CREDITED,
        ),
        (S.ON_HOLD, K.REVIEW_REJECTED): _to(_reject_review, S.FAILED, S.CANCELED),
        (S.ON_HOLD, K.REFUND_SUCCEEDED): _to(_settle_refund, S.ON_HOLD, S.CREDITED, S.REFUNDED),
        (S.ON_HOLD, K.REFUND_FAILED): _to(_fail_refund, S.CREDITED),
        (S.ON_HOLD, K.RISK_VERDICT): _to(_apply_verdict, S.ON_HOLD),
        (S.ON_HOLD, K.FREEZE_CHANGED): _to(
            _lift_freezes, S.ON_HOLD, S.CREDITED, S.REFUND_IN_PROGRESS
        ),
        # CREDITED: the money is on the account; only refunds move it now.
        (S.CREDITED, K.PAYMENT_SUCCEEDED): _to(_second_payment, S.CREDITED),
        (S.CREDITED, K.PAYMENT_FAILED): _to(_ignore_stale, S.CREDITED),
        (S.CREDITED, K.REFUND_REQUESTED): _to(_request_refund, S.REFUND_IN_PROGRESS, S.ON_HOLD),
        (S.CREDITED, K.REFUND_SUCCEEDED): _to(_hold_until_refund_request, S.CREDITED),
        (S.CREDITED, K.REFUND_FAILED): _to(_hold_until_refund_request, S.CREDITED),
        (S.CREDITED, K.RISK_VERDICT): _to(_apply_verdict, S.CREDITED),
        (S.CREDITED, K.FREEZE_CHANGED): _to(_unchanged, S.CREDITED),
        (S.CREDITED, K.REVERSAL_REQUESTED): _to(_reverse, S.REVERSED),
        # REFUND_IN_PROGRESS: one refund at a time, settled by the provider's answer.
        (S.REFUND_IN_PROGRESS, K.PAYMENT_SUCCEEDED): _to(_second_payment, S.REFUND_IN_PROGRESS),
        (S.REFUND_IN_PROGRESS, K.PAYMENT_FAILED): _to(_ignore_stale, S.REFUND_IN_PROGRESS),
        (S.REFUND_IN_PROGRESS, K.REFUND_SUCCEEDED): _to(
            _settle_refund, S.REFUND_IN_PROGRESS, S.CREDITED, S.REFUNDED
        ),
        (S.REFUND_IN_PROGRESS, K.REFUND_FAILED): _to(_fail_refund, S.CREDITED),
        (S.REFUND_IN_PROGRESS, K.RISK_VERDICT): _to(_apply_verdict, S.REFUND_IN_PROGRESS),
        (S.REFUND_IN_PROGRESS, K.FREEZE_CHANGED): _to(_unchanged, S.REFUND_IN_PROGRESS),
        # REFUNDED: everything paid went back; nothing moves any more.
        (S.REFUNDED, K.PAYMENT_SUCCEEDED): _to(_second_payment, S.REFUNDED),
        (S.REFUNDED, K.PAYMENT_FAILED): _to(_ignore_stale, S.REFUNDED),
        (S.REFUNDED, K.RISK_VERDICT): _to(_apply_verdict, S.REFUNDED),
        (S.REFUNDED, K.FREEZE_CHANGED): _to(_unchanged, S.REFUNDED),
        # REVERSED: an operator took the credit back; nothing moves any more.
        (S.REVERSED, K.REVERSAL_REQUESTED): _to(_reverse, S.REVERSED),
        (S.REVERSED, K.PAYMENT_SUCCEEDED): _to(_second_payment, S.REVERSED),
        (S.REVERSED, K.PAYMENT_FAILED): _to(_ignore_stale, S.REVERSED),
        (S.REVERSED, K.RISK_VERDICT): _to(_apply_verdict, S.REVERSED),
        (S.REVERSED, K.FREEZE_CHANGED): _to(_unchanged, S.REVERSED),
        # CANCELED / FAILED: ended unpaid. Money arriving now goes to a reviewer.
        (S.CANCELED, K.PAYMENT_SUCCEEDED): _to(_late_payment, S.ON_HOLD, S.CANCELED),
        (S.CANCELED, K.PAYMENT_FAILED): _to(_ignore_stale, S.CANCELED),
        (S.CANCELED, K.RISK_VERDICT): _to(_apply_verdict, S.CANCELED),
        (S.CANCELED, K.FREEZE_CHANGED): _to(_unchanged, S.CANCELED),
        (S.FAILED, K.PAYMENT_SUCCEEDED): _to(_late_payment, S.ON_HOLD, S.FAILED),
        (S.FAILED, K.PAYMENT_FAILED): _to(_ignore_stale, S.FAILED),
        (S.FAILED, K.RISK_VERDICT): _to(_apply_verdict, S.FAILED),
        (S.FAILED, K.FREEZE_CHANGED): _to(_unchanged, S.FAILED),
    }
)


# --- the step ------------------------------------------------------------------------


def _cause_of(event: OrderInput) -> tuple[IdPart, ...]:
    if isinstance(event, OrderEvent):
        return ("order", event.event_id)
    if isinstance(event, PaymentEvent):
        return ("payment", event.provider, event.event_id)
    if isinstance(event, RiskVerdict):
        return ("risk", event.decision.value, event.decided_at)
    return ("freeze", event.command_id)


def _duplicate_of(state: OrderState, event: OrderInput) -> str | None:
    """Why this input was already applied, or None if it is new."""
    if isinstance(event, OrderEvent):
        return "order event already applied" if event.event_id in state.seen_order_events else None
    if not isinstance(event, PaymentEvent):
        return None
    key = (event.provider, event.event_id)
    if key in state.seen_payment_events or any(
        (held.event.provider, held.event.event_id) == key for held in state.held_payments
    ):
        return "provider event already received"
    if (
        event.kind is PaymentKind.PAYMENT_SUCCEEDED
        and event.external_txn_id in state.received_txn_ids
    ):
        return "a success for this external txn id was already received"
    settled = {r.refund_id for r in state.refunds if r.state is not RefundState.IN_PROGRESS}
    if event.kind in (PaymentKind.REFUND_SUCCEEDED, PaymentKind.REFUND_FAILED) and (
        event.refund_id in settled
    ):
        return "this refund was already settled"
    return None


def _remember(state: OrderState, event: OrderInput) -> OrderState:
    if isinstance(event, OrderEvent):
        return evolve(state, seen_order_events=state.seen_order_events | {event.event_id})
    # A held payment is remembered by the hold itself until it applies.
    held = any(held.event is event for held in state.held_payments)
    if isinstance(event, PaymentEvent) and state.facts is not None and not held:
        key = (event.provider, event.event_id)
        return evolve(state, seen_payment_events=state.seen_payment_events | {key})
    return state


def _move(state: OrderState, fx: _Effects, why: str) -> OrderState:
    status = derive_status(state)
    if status is None or status == state.status:
        return state
    reason = why
    if status is OrderStatus.ON_HOLD:
        reason = f"{why}: {','.join(sorted(state.hold_reasons))}"
    version = state.version + 1
    change = StatusChange(
        state.order_id, status, state.status, reason, version, fx.now, fx.correlation_id
    )
    fx.emit(change)
    return evolve(state, status=status, version=version)


def _credit_due(state: OrderState, ctx: Context) -> bool:
    risk_known = state.risk is not None or not ctx.require_risk_verdict
    return (
        state.payment is not None
        and not state.credited
        and state.closed is None
        and not state.hold_reasons
        and risk_known
    )


def _bonus(state: OrderState) -> tuple[int, bool]:
    """The bonus the credit carries (a function of the state, so a reversal finds the
    same), and whether risk withheld it."""
    facts, payment = _facts(state), _payment(state)
    # The bonus belongs to the order as created; a reviewed, different payment earns none.
    paid_as_ordered = (payment.amount_minor, payment.currency) == (
        facts.amount_minor,
        facts.currency,
    )
    # A repeat purchase-then-refund abuser keeps the top-up but not the promotion.
    withheld = state.risk is not None and state.risk.bonus_withheld
    return (facts.promo_bonus_minor if paid_as_ordered and not withheld else 0), withheld


def _payment_entry(state: OrderState, op: LedgerOp, reason: LedgerReason, bonus: int,
                   caused_by: str, fx: _Effects) -> LedgerEntryOut:
    """The whole payment (and bonus) as one entry: the credit, or its reversal."""
    payment = _payment(state)
    return LedgerEntryOut(
        entry_id=entry_id(state.order_id, op, payment.external_txn_id, None),
        op=op,
        account_id=_facts(state).account_id,
        order_id=state.order_id,
        amount_minor=payment.amount_minor,
        bonus_minor=bonus,
        currency=payment.currency,
        provider=payment.provider,
        external_txn_id=payment.external_txn_id,
        refund_id=None,
        reason=reason,
        caused_by=caused_by,
        created_at=fx.now,
        correlation_id=fx.correlation_id,
    )


def _credit(state: OrderState, fx: _Effects) -> OrderState:
    payment = _payment(state)
    bonus, withheld = _bonus(state)
    reason = LedgerReason.PAYMENT_CONFIRMED
    if state.review_approved:
        reason = LedgerReason.REVIEW_APPROVED
    credit = _payment_entry(state, LedgerOp.CREDIT, reason, bonus, payment.event_id, fx)
    inputs = {
        "external_txn_id": payment.external_txn_id,
        "bonus_minor": str(bonus),
        "bonus_withheld": str(withheld).lower(),
        "currency": payment.currency,
        "reason": reason.value,
    }
    return _book(state, credit, fx, Rule.CREDIT, inputs)


def _settle(state: OrderState, fx: _Effects) -> OrderState:
    if not _credit_due(state, fx.ctx):
        return state
    if fx.ctx.credits_frozen:
        inputs = {"external_txn_id": _payment(state).external_txn_id}
        state = _hold(state, fx, HoldReason.CREDIT_FREEZE, Rule.FREEZE, inputs)
        return _move(state, fx, "CREDITS_FROZEN")
    return _move(_credit(state, fx), fx, "CREDITED")


def _describe(event: OrderInput) -> dict[str, str]:
    return {"input": input_kind(event).value, "cause": ":".join(map(str, _cause_of(event)))}


def _refuse(state: OrderState, event: OrderInput, reason: str, fx: _Effects) -> None:
    details = {"status": str(state.status or "NO_ORDER"), "reason": reason} | _describe(event)
    provider = state.facts.provider if state.facts else None
    fx.alert(AlertKind.ILLEGAL_TRANSITION, Severity.WARN, provider, details)
    fx.audit(AuditAction.REFUSED, Rule.TRANSITIONS, details, "REFUSED")


def _dispatch(
    state: OrderState, event: OrderInput, fx: _Effects, correlation_id: str | None
) -> OrderState:
    # The version tells apart the same input met again at another point of the history.
    fx.handling((*_cause_of(event), state.version), correlation_id)
    duplicate = _duplicate_of(state, event)
    kind = input_kind(event)
    if duplicate is not None:
        inputs = _describe(event) | {"why": duplicate}
        fx.audit(AuditAction.DUPLICATE_IGNORED, Rule.DEDUP, inputs, "IGNORED")
        return state
    transition = TRANSITIONS.get((state.status, kind))
    mark = fx.mark()
    try:
        if transition is None:
            raise Refused(f"{kind} is not allowed while {state.status or 'NO_ORDER'}")
        updated = transition.handler(state, event, fx)
    except Refused as refusal:
        fx.rollback(mark)
        _refuse(state, event, refusal.reason, fx)
        return state
    updated = _move(_remember(updated, event), fx, kind.value)
    return _settle(updated, fx)


REFUND_RESULTS = frozenset({PaymentKind.REFUND_SUCCEEDED, PaymentKind.REFUND_FAILED})


def _applicable(state: OrderState, event: PaymentEvent) -> bool:
    """A held payment waits for its order; a held refund result for its refund request."""
    if state.facts is None:
        return False
    if event.kind in REFUND_RESULTS:
        in_flight = state.refund_in_flight
        return in_flight is not None and in_flight.refund_id == event.refund_id
    return True


def _apply_held_payments(state: OrderState, fx: _Effects) -> OrderState:
    # Applying one held event can make another applicable (a payment, then its refund).
    while ready := next(
        (held for held in state.held_payments if _applicable(state, held.event)), None
    ):
        remaining = tuple(held for held in state.held_payments if held is not ready)
        state = evolve(state, held_payments=remaining)
        state = _dispatch(state, ready.event, fx, ready.correlation_id)
    return state


def _raise_orphan_alerts(state: OrderState, fx: _Effects) -> OrderState:
    if not state.held_payments:
        return state  # every step ends here: most orders hold nothing, so copy nothing
    held_payments = []
    for held in state.held_payments:
        if not held.orphan_alerted and fx.now > held.arrived_at + fx.ctx.orphan_hold_ms:
            event = held.event
            fx.handling(("orphan", event.provider, event.event_id), held.correlation_id)
            details = _payment_details(event) | {"arrived_at": str(held.arrived_at)}
            fx.alert(AlertKind.ORPHAN_PAYMENT, Severity.WARN, event.provider, details)
            fx.audit(AuditAction.HOLD, Rule.ORPHAN_PAYMENT, details, "STILL_HELD")
            held = evolve(held, orphan_alerted=True)
        held_payments.append(held)
    return evolve(state, held_payments=tuple(held_payments))


def _order_id_of(event: OrderInput | Tick) -> str:
    if isinstance(event, OrderEvent | PaymentEvent | RiskVerdict):
        return event.order_id
    raise ValueError(f"{type(event).__name__} needs an existing order state")


def step(
    state: OrderState | None, event: OrderInput | Tick, ctx: Context
) -> tuple[OrderState, list[Output]]:
    """Apply one input to one order's state; the only entry point of the machine.

    Raises ValueError only for caller mistakes (a Tick or FreezeChanged without a state,
    an order event or verdict routed to another order's state, a Tick whose time is not
    the context's); every problem with the data itself becomes outputs instead.
    """
    if state is None:
        state = OrderState(order_id=_order_id_of(event))
    elif isinstance(event, OrderEvent | RiskVerdict) and event.order_id != state.order_id:
        raise ValueError(f"{event.order_id} routed to the state of {state.order_id}")
    fx = _Effects(state, ctx)
    if isinstance(event, Tick):
        if event.now_ms != ctx.now_ms:
            raise ValueError("a Tick's now_ms must be the context's now_ms")
    else:
        state = _dispatch(state, event, fx, ctx.correlation_id)
        state = _apply_held_payments(state, fx)
    return _raise_orphan_alerts(state, fx), fx.outputs
