"""The order state machine (streams/domain/orders/machine.py), its inputs, outputs and state,
and the freeze scope matcher (streams/domain/common/freeze.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streams.domain.common import freeze
from streams.domain.common.ids import entry_id
from streams.domain.common.outputs import AlertOut, AuditOut, Severity
from streams.domain.common.payments import PaymentEvent
from streams.domain.common.time import Tick
from streams.domain.orders.inputs import (
    FreezeChanged,
    InputKind,
    OrderEvent,
    OrderInput,
    RiskDecision,
    RiskVerdict,
)
from streams.domain.orders.machine import NO_ORDER, TRANSITIONS, step
from streams.domain.orders.outputs import (
    AlertKind,
    AuditAction,
    LedgerEntryOut,
    LedgerOp,
    LedgerReason,
    Output,
    StatusChange,
)
from streams.domain.orders.state import HoldReason, OrderState, OrderStatus, derive_status
from tests.unit.order_machine_runner import (
    ALLOWED_MOVES,
    AMOUNT,
    BONUS,
    CREDIT_ID,
    HOLD_MS,
    ORDER_ID,
    T0,
    Run,
    alert_kinds,
    alerts,
    audit_actions,
    audits,
    cases,
    created,
    credited_run,
    ctx,
    ledger,
    moves,
    order_event,
    paid,
    payment_failed,
    refund_request,
    refund_result,
    reversal,
    run_of,
    verdict,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

# --- the transition table, row by row ------------------------------------------------

# One or more ways to bring an order into each status; the table tests probe them all.
VARIANTS: dict[str, tuple[dict[str, bool], list[OrderInput]]] = {
    "nothing": ({}, []),
    "held-payment": ({}, [paid()]),
    "verdict-before-order": ({}, [verdict("ALLOW")]),
    "created": ({}, [created()]),
    "pending": ({}, [created(), order_event("PAYMENT_INITIATED")]),
    "awaiting-risk": ({"require_risk_verdict": True}, [created(), paid()]),
    "held-for-review": ({}, [created(), verdict("REVIEW")]),
    "held-for-step-up": ({}, [created(), verdict("STEP_UP")]),
    "held-mismatch": ({}, [created(), paid(amount_minor=1)]),
    "held-blocked-and-paid": ({}, [created(), verdict("BLOCK"), paid()]),
    "held-credit-freeze": ({"credits_frozen": True}, [created(), paid()]),
    "held-late-payment": ({}, [created(), order_event("CANCELED"), paid()]),
    "held-refund-freeze": ({"refunds_frozen": True}, [created(), paid(), refund_request()]),
    "credited": ({}, [created(), paid()]),
    "refund-in-progress": ({}, [created(), paid(), refund_request(amount=AMOUNT // 2)]),
    "refunded": ({}, [created(), paid(), refund_request(), refund_result()]),
    "reversed": ({}, [created(), paid(), reversal()]),
    "canceled": ({}, [created(), order_event("CANCELED")]),
    "failed": ({}, [created(), payment_failed()]),
    "failed-after-rejection": (
        {},
        [created(), paid(amount_minor=1), order_event("REVIEW_REJECTED")],
    ),
}


def build(name: str) -> Run:
    flags, events = VARIANTS[name]
    return run_of(*events, **flags)


VARIANT_STATUS = {name: build(name).status for name in VARIANTS}
ALL_STATUSES: list[OrderStatus | None] = [NO_ORDER, *OrderStatus]


def probe(kind: InputKind, state: OrderState | None) -> OrderInput | None:
    """A fresh input of `kind` that fits `state` as well as such an input can."""
    in_flight = state.refund_in_flight if state else None
    refund_id = in_flight.refund_id if in_flight else "ref-probe"
    refund_amount = in_flight.amount_minor if in_flight else 1
    if kind is InputKind.CREATED:
        return created(event_id="created-probe")
    if kind is InputKind.REFUND_REQUESTED:
        amount = max(state.refundable_minor, 1) if state else 1
        return refund_request("ref-probe", amount, event_id="req-probe")
    if kind in (InputKind.REFUND_SUCCEEDED, InputKind.REFUND_FAILED):
        ok = kind is InputKind.REFUND_SUCCEEDED
        return refund_result(refund_id, refund_amount, ok, event_id="refund-probe")
    if kind is InputKind.PAYMENT_SUCCEEDED:
        return paid("pay-probe", "txn-probe")
    if kind is InputKind.PAYMENT_FAILED:
        return payment_failed("fail-probe", "txn-probe")
    if kind is InputKind.RISK_VERDICT:
        return verdict("REVIEW", decided_at=T0 + 7)
    if kind is InputKind.FREEZE_CHANGED:
        return None if state is None else FreezeChanged("cmd-probe")
    if kind is InputKind.REVERSAL_REQUESTED:
        credit = state.credit_entry_id if state else None
        return reversal("reversal-probe", credit or CREDIT_ID)
    return order_event(kind.value, event_id=f"{kind.value.lower()}-probe")


def refused(outputs: list[Output]) -> bool:
    return AlertKind.ILLEGAL_TRANSITION in alert_kinds(outputs)


def test_the_variants_reach_every_status() -> None:
    assert set(VARIANT_STATUS.values()) == set(ALL_STATUSES)


def test_the_table_only_names_known_statuses_and_inputs() -> None:
    for (status, kind), transition in TRANSITIONS.items():
        assert status in ALL_STATUSES and kind in InputKind
        assert transition.leads_to <= set(ALL_STATUSES)


@pytest.mark.parametrize(
    ("status", "kind"),
    sorted(TRANSITIONS, key=lambda row: (str(row[0]), row[1])),
    ids=lambda value: str(value or "NO_ORDER"),
)
def test_every_row_of_the_table_leads_where_it_says(
    status: OrderStatus | None, kind: InputKind
) -> None:
    transition = TRANSITIONS[(status, kind)]
    accepted = 0
    for name in (name for name, found in VARIANT_STATUS.items() if found is status):
        run = build(name)
        before = run.state
        event = probe(kind, before)
        if event is None:
            continue
        outputs = run(event, **VARIANTS[name][0])
        assert run.state is not None
        if refused(outputs):  # a handler may refuse one particular input of its row
            assert run.state == (before or OrderState(ORDER_ID))
            continue
        accepted += 1
        for previous, target, _ in moves(outputs):
            assert (previous, target) in ALLOWED_MOVES | {(NO_ORDER, OrderStatus.CREATED)}
        assert run.status == derive_status(run.state)
        if not (before and before.held_payments):  # held payments then apply by their rows
            assert run.status in transition.leads_to, name
    assert accepted, "no variant exercised this row"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(s, k) for s in ALL_STATUSES for k in InputKind if (s, k) not in TRANSITIONS],
    ids=lambda value: str(value or "NO_ORDER"),
)
def test_every_pair_outside_the_table_is_refused(
    status: OrderStatus | None, kind: InputKind
) -> None:
    for name in (name for name, found in VARIANT_STATUS.items() if found is status):
        run = build(name)
        before = run.state
        event = probe(kind, before)
        if event is None:
            continue
        outputs = run(event)
        assert [type(o) for o in outputs] == [AlertOut, AuditOut]
        [alert] = alerts(outputs)
        assert (alert.kind, alert.severity) == (AlertKind.ILLEGAL_TRANSITION, Severity.WARN)
        assert alert.details["input"] == kind.value
        assert audit_actions(outputs) == [AuditAction.REFUSED]
        assert run.state == (before or OrderState(ORDER_ID))


# --- behaviour 1: illegal and late transitions -----------------------------------------


def test_cancel_after_credit_is_refused_and_changes_nothing() -> None:
    run = credited_run()
    before = run.state
    outputs = run(order_event("CANCELED"))
    assert alert_kinds(outputs) == [AlertKind.ILLEGAL_TRANSITION]
    [audit] = audits(outputs)
    assert audit.action is AuditAction.REFUSED
    assert audit.inputs["status"] == "CREDITED"
    assert run.state == before
    # Refused inputs are not remembered, so fixing the cause lets them through later.
    assert "canceled-1" not in run.state.seen_order_events


@pytest.mark.parametrize("ending", ["CANCELED", "PAYMENT_FAILED"])
def test_a_payment_after_the_order_ended_waits_for_a_reviewer(ending: str) -> None:
    end = order_event("CANCELED") if ending == "CANCELED" else payment_failed()
    run = run_of(created(), order_event("PAYMENT_INITIATED"), end)
    outputs = run(paid())
    assert run.status is OrderStatus.ON_HOLD
    assert run.state.hold_reasons == {HoldReason.LATE_PAYMENT}
    assert alert_kinds(outputs) == [AlertKind.LATE_PAYMENT]
    assert [c.reason for c in cases(outputs)] == ["LATE_PAYMENT"]
    assert AuditAction.HOLD in audit_actions(outputs)
    assert not ledger(run.log)

    outputs = run(order_event("REVIEW_APPROVED", actor="reviewer-7"))
    [credit] = ledger(outputs)
    assert (credit.reason, credit.amount_minor, credit.bonus_minor) == (
        LedgerReason.REVIEW_APPROVED,
        AMOUNT,
        BONUS,
    )
    assert run.status is OrderStatus.CREDITED
    release = next(a for a in audits(outputs) if a.action is AuditAction.RELEASE)
    assert release.actor == "reviewer-7"


def test_rejecting_a_late_payment_leaves_the_order_cancelled() -> None:
    run = run_of(created(), order_event("CANCELED"), paid())
    outputs = run(order_event("REVIEW_REJECTED", actor="reviewer-7"))
    assert run.status is OrderStatus.CANCELED
    [audit] = audits(outputs)
    assert audit.action is AuditAction.REVIEW_REJECTED
    assert audit.inputs["uncredited_paid_minor"] == str(AMOUNT)
    assert not ledger(run.log)


# --- behaviour 2: the happy path -------------------------------------------------------


def test_happy_path_credits_once_with_the_locked_bonus() -> None:
    run = Run()
    assert moves(run(created())) == [(None, OrderStatus.CREATED, 1)]
    assert moves(run(order_event("PAYMENT_INITIATED"))) == [
        (OrderStatus.CREATED, OrderStatus.PENDING_PAYMENT, 2)
    ]
    outputs = run(paid())
    assert moves(outputs) == [
        (OrderStatus.PENDING_PAYMENT, OrderStatus.PAYMENT_CONFIRMED, 3),
        (OrderStatus.PAYMENT_CONFIRMED, OrderStatus.CREDITED, 4),
    ]
    [credit] = ledger(outputs)
    assert credit == LedgerEntryOut(
        entry_id=entry_id(ORDER_ID, "CREDIT", "txn-1", None),
        op=LedgerOp.CREDIT,
        account_id="acc-1",
        order_id=ORDER_ID,
        amount_minor=AMOUNT,
        bonus_minor=BONUS,
        currency="USD",
        provider="hmac",
        external_txn_id="txn-1",
        refund_id=None,
        reason=LedgerReason.PAYMENT_CONFIRMED,
        caused_by="pay-1",
        created_at=run.now,
        correlation_id="corr-1",
    )
    [audit] = audits(outputs)
    assert (audit.action, audit.inputs["entry_id"]) == (AuditAction.CREDIT, credit.entry_id)
    assert not alerts(run.log)


def test_a_payment_may_arrive_without_an_intent() -> None:
    run = run_of(created())
    outputs = run(paid())
    assert [target for _, target, _ in moves(outputs)] == [
        OrderStatus.PAYMENT_CONFIRMED,
        OrderStatus.CREDITED,
    ]
    assert len(ledger(outputs)) == 1


def test_outputs_fall_back_to_the_orders_first_correlation_id() -> None:
    run = run_of(created())
    outputs = run(paid(), correlation_id=None)
    assert {o.correlation_id for o in outputs} == {"corr-1"}
    outputs = run(order_event("CANCELED"), correlation_id="corr-2")
    assert {o.correlation_id for o in outputs} == {"corr-2"}


# --- behaviour 3: validation before credit ---------------------------------------------

MISMATCHES = [
    ("amount_minor", {"amount_minor": AMOUNT - 1}, {}, AlertKind.AMOUNT_MISMATCH),
    ("currency", {"currency": "EUR"}, {}, AlertKind.CURRENCY_MISMATCH),
    ("merchant_id", {"merchant_id": "mch-2"}, {}, AlertKind.MERCHANT_MISMATCH),
    ("provider", {"provider": "stripe"}, {}, AlertKind.MERCHANT_MISMATCH),
    ("app_id", {"app_id": "app-2"}, {"app_id": "app-1"}, AlertKind.MERCHANT_MISMATCH),
    ("order_id", {"order_id": "ord-other"}, {}, AlertKind.ORDER_MISMATCH),
]


@pytest.mark.parametrize(("field", "payment_fields", "order_fields", "kind"), MISMATCHES)
def test_a_payment_that_differs_from_its_order_is_held_not_credited(
    field: str, payment_fields: dict, order_fields: dict, kind: AlertKind
) -> None:
    run = run_of(created(**order_fields))
    outputs = run(paid(**payment_fields))
    assert not ledger(outputs)
    assert run.status is OrderStatus.ON_HOLD
    assert run.state.hold_reasons == {HoldReason.MISMATCH}
    [alert] = alerts(outputs)
    assert (alert.kind, alert.details["field"]) == (kind, field)
    [audit] = audits(outputs)
    assert audit.action is AuditAction.HOLD
    assert audit.inputs[f"actual.{field}"] == str(payment_fields[field])
    assert f"expected.{field}" in audit.inputs
    [case] = cases(outputs)
    assert case.evidence == {k: v for k, v in audit.inputs.items() if k != "hold"}


def test_app_id_is_only_checked_when_the_order_has_one() -> None:
    run = run_of(created())
    assert len(ledger(run(paid(app_id="anything")))) == 1


def test_every_mismatched_field_raises_its_own_alert() -> None:
    run = run_of(created())
    outputs = run(paid(amount_minor=1, currency="EUR"))
    assert alert_kinds(outputs) == [AlertKind.AMOUNT_MISMATCH, AlertKind.CURRENCY_MISMATCH]
    assert len(cases(outputs)) == 1


def test_approving_a_mismatch_credits_the_money_that_arrived_without_the_bonus() -> None:
    run = run_of(created(), paid(amount_minor=AMOUNT - 1))
    outputs = run(order_event("REVIEW_APPROVED", actor="rev"))
    [credit] = ledger(outputs)
    assert (credit.amount_minor, credit.bonus_minor) == (AMOUNT - 1, 0)
    assert credit.reason is LedgerReason.REVIEW_APPROVED
    assert run.status is OrderStatus.CREDITED
    assert refused(run(order_event("REVIEW_APPROVED", "again", actor="rev")))


def test_approving_a_merchant_mismatch_keeps_the_bonus() -> None:
    run = run_of(created(), paid(merchant_id="mch-2"))
    [credit] = ledger(run(order_event("REVIEW_APPROVED")))
    assert (credit.amount_minor, credit.bonus_minor) == (AMOUNT, BONUS)


def test_rejecting_a_mismatch_fails_the_order_without_credit() -> None:
    run = run_of(created(), paid(currency="EUR"))
    outputs = run(order_event("REVIEW_REJECTED", actor="rev"))
    assert moves(outputs) == [(OrderStatus.ON_HOLD, OrderStatus.FAILED, 3)]
    [audit] = audits(outputs)
    assert (audit.action, audit.actor) == (AuditAction.REVIEW_REJECTED, "rev")
    assert not ledger(run.log)


# --- behaviour 4: duplicates -----------------------------------------------------------


@pytest.mark.parametrize(
    "again",
    [paid(), paid("pay-2"), paid("pay-1", "txn-1", amount_minor=1)],
    ids=["same-event", "same-txn-new-event", "same-event-other-body"],
)
def test_a_repeated_payment_credits_once(again: PaymentEvent) -> None:
    run = credited_run()
    before = run.state
    outputs = run(again)
    assert [type(o) for o in outputs] == [AuditOut]
    assert audit_actions(outputs) == [AuditAction.DUPLICATE_IGNORED]
    assert run.state == before


def test_a_repeated_payment_during_a_hold_is_ignored_too() -> None:
    run = run_of(created(), verdict("REVIEW"), paid())
    assert audit_actions(run(paid("pay-2"))) == [AuditAction.DUPLICATE_IGNORED]
    assert len(ledger(run(order_event("REVIEW_APPROVED")))) == 1


def test_a_second_charge_is_never_credited_and_goes_to_review() -> None:
    run = credited_run()
    outputs = run(paid("pay-2", "txn-2"))
    assert not ledger(outputs)
    assert alert_kinds(outputs) == [AlertKind.DUPLICATE_PAYMENT]
    assert [c.reason for c in cases(outputs)] == ["DUPLICATE_PAYMENT"]
    assert audit_actions(outputs) == [AuditAction.HOLD]
    assert run.status is OrderStatus.CREDITED
    assert audit_actions(run(paid("pay-3", "txn-2"))) == [AuditAction.DUPLICATE_IGNORED]


def test_a_repeated_order_event_is_ignored() -> None:
    run = run_of(created())
    before = run.state
    assert audit_actions(run(created())) == [AuditAction.DUPLICATE_IGNORED]
    assert run.state == before


# --- behaviour 5: payment before its order ---------------------------------------------


def test_a_payment_before_its_order_is_held_then_applied() -> None:
    run = Run()
    outputs = run(paid(), correlation_id="corr-pay")
    assert run.status is None and run.state.facts is None
    assert audit_actions(outputs) == [AuditAction.HOLD]
    assert not moves(outputs)

    outputs = run(created(), correlation_id="corr-order")
    assert moves(outputs) == [
        (None, OrderStatus.CREATED, 1),
        (OrderStatus.CREATED, OrderStatus.PAYMENT_CONFIRMED, 2),
        (OrderStatus.PAYMENT_CONFIRMED, OrderStatus.CREDITED, 3),
    ]
    [credit] = ledger(outputs)
    assert credit.correlation_id == "corr-pay"  # caused by the payment, not the order
    assert run.state.held_payments == ()
    assert not alert_kinds(run.log)


def test_a_held_payment_past_the_window_raises_one_orphan_alert() -> None:
    run = Run()
    arrived = T0 + 1000
    run(paid(), at=arrived)
    assert run.tick(arrived + HOLD_MS) == []  # not yet: the window is inclusive
    outputs = run.tick(arrived + HOLD_MS + 1)
    [alert] = alerts(outputs)
    assert (alert.kind, alert.severity, alert.provider) == (
        AlertKind.ORPHAN_PAYMENT,
        Severity.WARN,
        "hmac",
    )
    assert audit_actions(outputs) == [AuditAction.HOLD]
    assert run.tick(arrived + 2 * HOLD_MS) == []
    # Still held: the order may yet come, and then the payment applies.
    outputs = run(created())
    assert len(ledger(outputs)) == 1
    assert alert_kinds(outputs) == []


def test_any_late_input_raises_the_orphan_alert_not_only_a_tick() -> None:
    run = Run()
    run(paid(), at=T0)
    outputs = run(paid("pay-2", "txn-2"), at=T0 + HOLD_MS + 1)
    assert alert_kinds(outputs) == [AlertKind.ORPHAN_PAYMENT]
    # The second payment was still inside its own window.
    assert [a.details["event_id"] for a in alerts(outputs)] == ["pay-1"]


def test_an_order_arriving_after_the_window_applies_the_payment_without_an_alert() -> None:
    run = Run()
    run(paid(), at=T0)
    outputs = run(created(), at=T0 + 2 * HOLD_MS)
    assert alert_kinds(outputs) == [] and len(ledger(outputs)) == 1


def test_held_events_apply_in_arrival_order_and_duplicates_are_caught() -> None:
    run = Run()
    run(paid())
    assert audit_actions(run(paid())) == [AuditAction.DUPLICATE_IGNORED]
    run(payment_failed())
    run(paid("pay-2", "txn-1"))
    outputs = run(created())
    assert len(ledger(outputs)) == 1
    assert AuditAction.IGNORED in audit_actions(outputs)  # the failure lost to the success
    assert AuditAction.DUPLICATE_IGNORED in audit_actions(outputs)
    assert run.status is OrderStatus.CREDITED


def test_a_tick_needs_a_state_and_the_contexts_time() -> None:
    with pytest.raises(ValueError):
        step(None, Tick(T0), ctx(T0))
    with pytest.raises(ValueError):
        step(None, FreezeChanged("cmd-1"), ctx(T0))
    state, _ = step(None, created(), ctx(T0))
    with pytest.raises(ValueError):
        step(state, Tick(T0 + 1), ctx(T0))


def test_an_event_for_another_order_is_a_routing_error() -> None:
    state, _ = step(None, created(), ctx(T0))
    with pytest.raises(ValueError):
        step(state, created(order_id="ord-2"), ctx(T0))


# --- behaviour 6: risk gating ----------------------------------------------------------


def test_a_blocked_order_pages_when_paid_and_credits_only_after_approval() -> None:
    run = run_of(created())
    outputs = run(verdict("BLOCK"))
    assert run.status is OrderStatus.ON_HOLD
    assert audit_actions(outputs) == [AuditAction.BLOCK]
    outputs = run(paid())
    assert not ledger(outputs)
    [alert] = alerts(outputs)
    assert (alert.kind, alert.severity) == (AlertKind.PAID_WHILE_BLOCKED, Severity.PAGE)
    assert AuditAction.BLOCK in audit_actions(outputs)
    [credit] = ledger(run(order_event("REVIEW_APPROVED")))
    assert credit.reason is LedgerReason.REVIEW_APPROVED
    assert not ledger(run(order_event("REVIEW_APPROVED", "approve-2")))


def test_a_review_verdict_holds_the_credit_until_approved() -> None:
    run = run_of(created(), verdict("REVIEW"), paid())
    assert not ledger(run.log) and not alerts(run.log)
    outputs = run(order_event("REVIEW_APPROVED"))
    assert len(ledger(outputs)) == 1


def test_step_up_holds_until_completed() -> None:
    run = run_of(created(), verdict("STEP_UP"), paid())
    assert run.status is OrderStatus.ON_HOLD and not ledger(run.log)
    outputs = run(order_event("STEP_UP_COMPLETED"))
    assert len(ledger(outputs)) == 1
    assert AuditAction.RELEASE in audit_actions(outputs)


def test_a_step_up_already_completed_holds_nothing() -> None:
    run = run_of(created(), order_event("STEP_UP_COMPLETED"), verdict("STEP_UP"))
    assert run.status is OrderStatus.CREATED


def test_without_a_required_verdict_a_payment_credits_and_a_late_block_alerts() -> None:
    run = credited_run()
    outputs = run(verdict("BLOCK"))
    assert alert_kinds(outputs) == [AlertKind.RISK_AFTER_CREDIT]
    assert audit_actions(outputs) == [AuditAction.IGNORED]
    assert run.status is OrderStatus.CREDITED


def test_a_required_verdict_keeps_the_payment_confirmed_until_allow() -> None:
    run = run_of(created(), paid(), require_risk_verdict=True)
    assert run.status is OrderStatus.PAYMENT_CONFIRMED and not ledger(run.log)
    outputs = run(verdict("ALLOW"))
    assert moves(outputs) == [(OrderStatus.PAYMENT_CONFIRMED, OrderStatus.CREDITED, 3)]


def test_a_block_on_an_order_already_paid_pages() -> None:
    run = run_of(created(), paid(), require_risk_verdict=True)
    outputs = run(verdict("BLOCK"))
    assert alert_kinds(outputs) == [AlertKind.PAID_WHILE_BLOCKED]
    assert run.status is OrderStatus.ON_HOLD


def test_a_verdict_before_the_order_applies_when_it_is_created() -> None:
    run = run_of(verdict("REVIEW"))
    assert run.status is None
    outputs = run(created())
    assert moves(outputs) == [(None, OrderStatus.ON_HOLD, 1)]
    assert run.state.hold_reasons == {HoldReason.RISK_REVIEW}


def test_the_first_verdict_stands() -> None:
    run = run_of(created(), verdict("REVIEW"), order_event("REVIEW_APPROVED"))
    assert audit_actions(run(verdict("REVIEW"))) == [AuditAction.DUPLICATE_IGNORED]
    assert audit_actions(run(verdict("BLOCK", decided_at=T0 + 5))) == [AuditAction.IGNORED]
    assert run.status is OrderStatus.CREATED


# --- behaviour 7: freezes --------------------------------------------------------------


def test_a_credit_freeze_holds_and_the_unfreeze_releases_exactly_once() -> None:
    run = run_of(created())
    outputs = run(paid(), credits_frozen=True)
    assert not ledger(outputs)
    assert run.state.hold_reasons == {HoldReason.CREDIT_FREEZE}
    hold = audits(outputs)[-1]
    assert (hold.action, hold.inputs["hold"]) == (AuditAction.HOLD, "CREDIT_FREEZE")
    assert run(FreezeChanged("cmd-1"), credits_frozen=True) == []

    outputs = run(FreezeChanged("cmd-2"))
    assert len(ledger(outputs)) == 1
    assert audit_actions(outputs) == [AuditAction.RELEASE, AuditAction.CREDIT]
    assert run.status is OrderStatus.CREDITED
    assert run(FreezeChanged("cmd-2")) == []
    assert run(FreezeChanged("cmd-3")) == []


def test_a_freeze_met_on_release_from_review_holds_again() -> None:
    run = run_of(created(), verdict("REVIEW"), paid())
    outputs = run(order_event("REVIEW_APPROVED"), credits_frozen=True)
    assert not ledger(outputs)
    assert run.state.hold_reasons == {HoldReason.CREDIT_FREEZE}
    assert len(ledger(run(FreezeChanged("cmd-1")))) == 1


def test_a_refund_freeze_holds_the_refund_until_unfrozen() -> None:
    run = credited_run()
    outputs = run(refund_request(), refunds_frozen=True)
    assert run.status is OrderStatus.ON_HOLD
    assert audit_actions(outputs) == [AuditAction.REFUND_ACCEPTED, AuditAction.HOLD]
    assert run(FreezeChanged("cmd-1"), refunds_frozen=True) == []
    outputs = run(FreezeChanged("cmd-2"))
    assert moves(outputs)[-1][:2] == (OrderStatus.ON_HOLD, OrderStatus.REFUND_IN_PROGRESS)
    assert len(ledger(run(refund_result()))) == 1
    assert run.status is OrderStatus.REFUNDED


def test_a_refund_settled_during_a_refund_freeze_is_still_recorded() -> None:
    run = credited_run()
    run(refund_request(), refunds_frozen=True)
    outputs = run(refund_result(), refunds_frozen=True)
    [debit] = ledger(outputs)
    assert debit.op is LedgerOp.DEBIT
    assert audit_actions(outputs) == [AuditAction.DEBIT, AuditAction.RELEASE]
    assert run.status is OrderStatus.REFUNDED


def test_an_entry_already_booked_is_never_emitted_again() -> None:
    # E.g. a state restored from a changelog that recorded the entry before a crash.
    run = credited_run()
    run(refund_request())
    booked = run.state.emitted_entry_ids | {entry_id(ORDER_ID, "DEBIT", "txn-1", "ref-1")}
    run.state = replace(run.state, emitted_entry_ids=booked)
    outputs = run(refund_result())
    assert not ledger(outputs)
    assert audit_actions(outputs) == [AuditAction.DUPLICATE_IGNORED]
    assert run.status is OrderStatus.REFUNDED


# --- behaviour 8: refunds --------------------------------------------------------------


def test_a_full_refund_debits_once_and_ends_refunded() -> None:
    run = credited_run()
    outputs = run(refund_request())
    assert run.status is OrderStatus.REFUND_IN_PROGRESS
    assert audit_actions(outputs) == [AuditAction.REFUND_ACCEPTED]
    outputs = run(refund_result())
    [debit] = ledger(outputs)
    assert debit.entry_id == entry_id(ORDER_ID, "DEBIT", "txn-1", "ref-1")
    assert (debit.op, debit.reason, debit.amount_minor, debit.bonus_minor) == (
        LedgerOp.DEBIT,
        LedgerReason.REFUND,
        AMOUNT,
        0,
    )
    assert (debit.refund_id, debit.caused_by) == ("ref-1", "refund_succeeded-ref-1")
    assert AuditAction.DEBIT in audit_actions(outputs)
    assert run.status is OrderStatus.REFUNDED
    assert audit_actions(run(refund_result(event_id="again"))) == [AuditAction.DUPLICATE_IGNORED]


def test_partial_refunds_return_to_credited_until_everything_is_back() -> None:
    run = credited_run()
    run(refund_request("ref-1", 3000))
    run(refund_result("ref-1", 3000))
    assert run.status is OrderStatus.CREDITED
    assert refused(run(refund_request("ref-2", AMOUNT - 2999)))
    run(refund_request("ref-2", AMOUNT - 3000))
    run(refund_result("ref-2", AMOUNT - 3000))
    assert run.status is OrderStatus.REFUNDED
    assert sum(d.amount_minor for d in ledger(run.log) if d.op is LedgerOp.DEBIT) == AMOUNT


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (refund_request(amount=AMOUNT + 1), "refundable"),
        (refund_request(amount=0), "refundable"),
        (refund_request(currency="EUR"), "currency"),
    ],
)
def test_a_refund_request_that_does_not_fit_is_refused(request_: OrderEvent, why: str) -> None:
    run = credited_run()
    before = run.state
    outputs = run(request_)
    [alert] = alerts(outputs)
    assert alert.kind == AlertKind.ILLEGAL_TRANSITION and why in alert.details["reason"]
    assert audit_actions(outputs) == [AuditAction.REFUSED]
    assert run.state == before


def test_a_refund_before_credit_is_refused() -> None:
    run = run_of(created())
    assert refused(run(refund_request()))


def test_a_refund_id_cannot_be_used_twice() -> None:
    run = credited_run()
    run(refund_request("ref-1", 100))
    run(refund_result("ref-1", 100, ok=False))
    assert refused(run(refund_request("ref-1", 100, event_id="req-again")))


def test_a_failed_refund_returns_to_credited_and_debits_nothing() -> None:
    run = credited_run()
    run(refund_request())
    outputs = run(refund_result(ok=False))
    assert run.status is OrderStatus.CREDITED
    assert audit_actions(outputs) == [AuditAction.REFUND_FAILED]
    assert not [e for e in ledger(run.log) if e.op is LedgerOp.DEBIT]
    run(refund_request("ref-2"))
    assert len(ledger(run(refund_result("ref-2")))) == 1


def test_a_refund_result_before_its_request_waits_for_it_then_debits_once() -> None:
    run = credited_run()
    outputs = run(refund_result())
    assert ledger(outputs) == []
    assert audit_actions(outputs) == [AuditAction.HOLD]
    assert run.status is OrderStatus.CREDITED
    outputs = run(refund_request())
    [debit] = ledger(outputs)
    assert debit.entry_id == entry_id(ORDER_ID, "DEBIT", "txn-1", "ref-1")
    assert run.status is OrderStatus.REFUNDED
    assert ledger(run(refund_result(event_id="again"))) == []


def test_a_refund_result_for_an_unknown_refund_is_refused() -> None:
    run = credited_run()
    run(refund_request())
    assert refused(run(refund_result("ref-9")))


def test_a_refund_result_with_another_amount_is_not_debited() -> None:
    run = credited_run()
    run(refund_request())
    outputs = run(refund_result(amount=AMOUNT - 1))
    assert not ledger(outputs)
    assert alert_kinds(outputs) == [AlertKind.AMOUNT_MISMATCH]
    assert [c.reason for c in cases(outputs)] == ["REFUND_MISMATCH"]
    assert run.status is OrderStatus.REFUND_IN_PROGRESS


# --- behaviour 9: audits and deterministic ids ------------------------------------------


def test_replaying_the_same_inputs_reproduces_the_same_outputs() -> None:
    events = [created(), verdict("BLOCK"), paid(), order_event("REVIEW_APPROVED"), paid("p2", "t2")]
    assert run_of(*events).log == run_of(*events).log


def test_output_ids_are_unique_within_a_history() -> None:
    run = run_of(created(), verdict("BLOCK"), paid(amount_minor=1, currency="EUR"))
    run(order_event("REVIEW_APPROVED"))
    ids = [o.alert_id for o in alerts(run.log)] + [o.audit_id for o in audits(run.log)]
    assert len(ids) == len(set(ids))


# --- state, records and inputs ---------------------------------------------------------


@pytest.mark.parametrize("name", [name for name in VARIANTS if name != "nothing"])
def test_state_round_trips_through_json(name: str) -> None:
    state = build(name).state
    assert state is not None
    encoded = json.dumps(state.to_dict())
    assert OrderState.from_dict(json.loads(encoded)) == state


def test_the_stored_state_leaves_defaults_out() -> None:
    state, _ = step(None, created(), ctx())
    assert set(state.to_dict()) == {"order_id", "status", "version", "facts", "seen_order_events"}


def _schema(name: str) -> dict:
    return fastavro.parse_schema(json.loads((SCHEMAS / f"{name}.v1.avsc").read_text()))


@pytest.mark.parametrize(
    ("schema", "output_type"),
    [
        ("OrderStatus", StatusChange),
        ("LedgerEntry", LedgerEntryOut),
        ("Alert", AlertOut),
        ("AuditRecord", AuditOut),
    ],
)
def test_records_match_the_contract_schemas(schema: str, output_type: type) -> None:
    run = run_of(created(), paid(amount_minor=1), order_event("REVIEW_APPROVED"))
    run(refund_request(amount=1))
    run(refund_result(amount=1))
    parsed = _schema(schema)
    records = [o.to_record() for o in run.log if isinstance(o, output_type)]
    assert records
    for record in records:
        assert list(record) == [f["name"] for f in parsed["fields"]]
        assert fastavro.validation.validate(record, parsed, raise_errors=True)


def test_output_keys_follow_the_contract() -> None:
    run = credited_run()
    [credit] = ledger(run.log)
    assert credit.key == "acc-1"
    assert {o.key for o in run.log if isinstance(o, StatusChange | AuditOut)} == {ORDER_ID}
    [alert] = alerts(run(paid("p2", "t2")))
    assert alert.key == AlertKind.DUPLICATE_PAYMENT
    [case] = cases(run.log)
    assert case.key == ORDER_ID
    assert set(case.to_record()) == {
        "case_id",
        "order_id",
        "provider",
        "reason",
        "evidence",
        "opened_at",
    }


def test_order_event_from_record_reads_the_wire_record() -> None:
    record = {
        "event_id": "e1",
        "type": "CREATED",
        "order_id": ORDER_ID,
        "occurred_at": T0,
        "account_id": "acc-1",
        "user_id": "user-1",
        "amount_minor": AMOUNT,
        "currency": "USD",
        "provider": "hmac",
        "merchant_id": "mch-1",
        "app_id": None,
        "device_id": "dev-1",
        "ip": None,
        "payment_token": None,
        "account_created_at": T0 - 1,
        "user_verified": True,
        "promo_id": "promo-1",
        "promo_bonus_minor": BONUS,
        "provider_intent_id": None,
        "refund_id": None,
        "actor": None,
        "field_from_a_newer_schema": "ignored",
    }
    assert fastavro.validation.validate(
        {k: v for k, v in record.items() if k != "field_from_a_newer_schema"},
        _schema("OrderEvent"),
    )
    event = OrderEvent.from_record(record)
    assert event == created(
        event_id="e1", device_id="dev-1", account_created_at=T0 - 1, user_verified=True
    )


@pytest.mark.parametrize(
    "change",
    [
        {"type": "SHIPPED"},
        {"event_id": ""},
        {"occurred_at": "yesterday"},
        {"amount_minor": -1},
        {"amount_minor": 0},
        {"currency": "usd"},
        {"merchant_id": ""},
    ],
)
def test_order_event_from_record_rejects_invalid_records(change: dict) -> None:
    record = {
        "event_id": "e1",
        "type": "CREATED",
        "order_id": ORDER_ID,
        "occurred_at": T0,
        "account_id": "acc-1",
        "user_id": "user-1",
        "amount_minor": AMOUNT,
        "currency": "USD",
        "provider": "hmac",
        "merchant_id": "mch-1",
    }
    with pytest.raises(ValueError):
        OrderEvent.from_record(record | change)


def test_a_refund_request_needs_a_refund_id() -> None:
    with pytest.raises(ValueError):
        order_event("REFUND_REQUESTED", amount_minor=1)


def test_risk_verdict_reads_the_wire_record() -> None:
    record = {
        "order_id": ORDER_ID,
        "account_id": "acc-1",
        "decision": "STEP_UP",
        "score": 55,
        "reasons": ["velocity.user"],
        "rules_version": "r7",
        "decided_at": T0,
    }
    assert fastavro.validation.validate(record, _schema("RiskDecision"))
    read = RiskVerdict.from_record(record)
    assert read == RiskVerdict(ORDER_ID, RiskDecision.STEP_UP, 55, ("velocity.user",), T0, "r7")
    assert RiskVerdict.from_dict(json.loads(json.dumps(read.to_dict()))) == read
    with pytest.raises(ValueError):
        RiskVerdict.from_record(record | {"decision": "MAYBE"})


def test_context_refuses_impossible_times() -> None:
    with pytest.raises(ValueError):
        ctx(-1)
    with pytest.raises(ValueError):
        ctx(T0, orphan_hold_ms=-5)


# --- the freeze scope matcher ----------------------------------------------------------


def _command(action: str, scope: str) -> dict[str, Any]:
    return {
        "command_id": f"{action}:{scope}",
        "action": action,
        "scope": scope,
        "reason": "incident",
        "issued_by": "ops",
        "issued_at": T0,
    }


def _apply(*commands: tuple[str, str]) -> dict[str, list[str]]:
    active: dict[str, list[str]] = {}
    for action, scope in commands:
        active = freeze.apply_command(active, _command(action, scope))
    return active


@pytest.mark.parametrize(
    ("scope", "matches"),
    [
        ("global", True),
        ("provider:hmac", True),
        ("provider:stripe", False),
        ("merchant:mch-1", True),
        ("merchant:mch-2", False),
        ("account:acc-1", True),
        ("account:acc-2", False),
    ],
)
def test_freeze_scopes_match_the_orders_attributes(scope: str, matches: bool) -> None:
    active = _apply(("FREEZE_CREDITS", scope))
    assert freeze.credits_frozen(active, "hmac", "mch-1", "acc-1") is matches
    assert freeze.refunds_frozen(active, "hmac", "mch-1", "acc-1") is False


def test_freeze_targets_are_independent_within_one_scope() -> None:
    active = _apply(("FREEZE_CREDITS", "global"), ("FREEZE_REFUNDS", "global"))
    assert active == {"global": ["CREDITS", "REFUNDS"]}
    active = freeze.apply_command(active, _command("UNFREEZE_CREDITS", "global"))
    assert active == {"global": ["REFUNDS"]}
    assert not freeze.credits_frozen(active, "hmac", "mch-1", "acc-1")
    assert freeze.refunds_frozen(active, "hmac", "mch-1", "acc-1")


def test_unfreezing_the_last_target_removes_the_scope_and_leaves_the_input_alone() -> None:
    active = _apply(("FREEZE_CREDITS", "merchant:mch-1"))
    after = freeze.apply_command(active, _command("UNFREEZE_CREDITS", "merchant:mch-1"))
    assert after == {}
    assert active == {"merchant:mch-1": ["CREDITS"]}
    assert freeze.apply_command({}, _command("UNFREEZE_REFUNDS", "global")) == {}


def test_freeze_ignores_attributes_an_order_does_not_have_yet() -> None:
    active = _apply(("FREEZE_CREDITS", "account:acc-1"))
    assert not freeze.credits_frozen(active, "hmac", "mch-1", None)
    assert freeze.scopes_of(None, None, None) == ["global"]


@pytest.mark.parametrize(
    ("action", "scope"),
    [
        ("FREEZE_EVERYTHING", "global"),
        ("FREEZE_CREDITS", "planet:earth"),
        ("FREEZE_CREDITS", "merchant:"),
        ("FREEZE_CREDITS", ""),
    ],
)
def test_freeze_commands_with_unknown_action_or_scope_are_rejected(action: str, scope: str) -> None:
    with pytest.raises(ValueError):
        freeze.apply_command({}, _command(action, scope))


def test_a_verdict_that_withholds_the_bonus_credits_the_payment_without_it() -> None:
    withheld = RiskVerdict(ORDER_ID, RiskDecision.ALLOW, 10, ("promo_bonus_withheld",), T0,
                           "rules-1")
    run = run_of(created(), withheld, paid(), require_risk_verdict=True)
    [credit] = ledger(run.log)
    assert (credit.amount_minor, credit.bonus_minor) == (AMOUNT, 0)
    kept = run_of(created(), verdict("ALLOW"), paid(), require_risk_verdict=True)
    assert [c.bonus_minor for c in ledger(kept.log)] == [BONUS]


def test_the_state_asks_to_be_woken_exactly_when_its_earliest_orphan_is_due() -> None:
    run = Run()
    assert OrderState("o-1").wake_at(HOLD_MS) is None
    first, second = T0 + 1000, T0 + 5000
    run(paid(), at=first)
    run(paid("pay-2", txn="txn-2"), at=second)
    wake = run.state.wake_at(HOLD_MS)
    assert wake == first + HOLD_MS + 1
    assert run.tick(wake - 1) == []  # the machine agrees: not a moment earlier
    assert len(alerts(run.tick(wake))) == 1
    # The first is alerted; the state now waits for the second only.
    assert run.state.wake_at(HOLD_MS) == second + HOLD_MS + 1
    assert len(alerts(run.tick(second + HOLD_MS + 1))) == 1
    assert run.state.wake_at(HOLD_MS) is None
