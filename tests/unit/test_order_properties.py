"""Random histories of one order against the money invariants of the state machine."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain.common.outputs import AlertOut, AuditOut
from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.domain.common.time import Tick
from streams.domain.orders.inputs import Context, FreezeChanged, OrderEvent, OrderInput, RiskVerdict
from streams.domain.orders.machine import NO_ORDER, step
from streams.domain.orders.outputs import (
    AuditAction,
    LedgerEntryOut,
    LedgerOp,
    Output,
    ReviewCase,
    StatusChange,
)
from streams.domain.orders.state import OrderState, OrderStatus, derive_status
from tests.unit.order_machine_runner import (
    ALLOWED_MOVES,
    HOLD_MS,
    ORDER_ID,
    T0,
    order_event,
    paid,
    refund_request,
    refund_result,
    verdict,
)

AMOUNTS = (1000, 2500)
TICK = "tick"  # stands in for a Tick, whose time is only known while playing


@dataclass(frozen=True)
class Move:
    event: OrderInput | str
    # Freezes are periods, not coin flips: a move may start or end one.
    toggle_credit_freeze: bool
    toggle_refund_freeze: bool
    advance_ms: int


@dataclass(frozen=True)
class History:
    created: dict[str, Any]
    require_risk_verdict: bool
    moves: list[Move]


@st.composite
def histories(draw: st.DrawFn) -> History:
    """A plausible life of one order, then noise inserted anywhere and some reordering."""
    amount = draw(st.sampled_from(AMOUNTS))
    order = {
        "amount_minor": amount,
        "promo_bonus_minor": draw(st.sampled_from([0, 300])),
        "app_id": draw(st.sampled_from([None, "app-1"])),
    }
    # A provider re-sends an event with the same body, so each event id has one body.
    bodies = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "txn": st.sampled_from(["t1", "t1", "t2", "t3"]),
                    "amount_minor": st.sampled_from([amount, amount, amount, amount - 7]),
                    "currency": st.sampled_from(["USD", "USD", "USD", "EUR"]),
                    "merchant_id": st.sampled_from(["mch-1", "mch-1", "mch-1", "mch-2"]),
                    "app_id": st.sampled_from(["app-1", "app-1", None]),
                }
            ),
            min_size=1,
            max_size=4,
        )
    )

    if draw(st.booleans()):  # half the orders are paid exactly as ordered
        bodies[0] |= {"amount_minor": amount, "currency": "USD", "merchant_id": "mch-1"}
        bodies[0]["app_id"] = order["app_id"]

    def payment(index: int) -> PaymentEvent:
        body = dict(bodies[index])
        return paid(f"p{index}", body.pop("txn"), **body)

    def order_input(kind: str, n: int = 0) -> OrderEvent:
        return order_event(kind, f"{kind}-{n}", actor="rev")

    def refund(refund_id: str, value: int) -> OrderEvent:
        return refund_request(refund_id, value, event_id=f"req-{refund_id}-{value}")

    def refund_outcome(refund_id: str, value: int, ok: bool) -> PaymentEvent:
        event_id = f"rr-{refund_id}-{value}-{ok}"
        return refund_result(refund_id, value, ok, event_id=event_id, external_txn_id="t1")

    refund_ids = st.sampled_from(["r1", "r2", "r3"])
    refund_amounts = st.sampled_from([amount, amount // 2, 1, amount + 1])
    decisions = st.sampled_from(["ALLOW", "STEP_UP", "REVIEW", "BLOCK"])

    life: list[OrderInput | str] = [order_event("CREATED", "created-1", **order)]
    if draw(st.booleans()):
        life.append(order_input("PAYMENT_INITIATED"))
    if draw(st.booleans()):
        life.append(verdict(draw(decisions)))
    # A third of the payments overtake their order.
    life.insert(0 if draw(st.integers(0, 2)) == 0 else len(life), payment(0))
    for kind in ("REVIEW_APPROVED", "STEP_UP_COMPLETED"):
        if draw(st.booleans()):
            life.append(order_input(kind))
    life.append(FreezeChanged("c-lifted"))
    for refund_id in draw(st.lists(refund_ids, unique=True, max_size=3)):
        value = draw(refund_amounts)
        life += [refund(refund_id, value), FreezeChanged(f"c-{refund_id}")]
        life.append(refund_outcome(refund_id, value, draw(st.booleans())))

    noise = st.one_of(
        st.sampled_from(life),  # a re-delivery
        st.just(order_event("CREATED", "created-2", **order)),
        st.builds(
            order_input,
            st.sampled_from(
                [
                    "PAYMENT_INITIATED",
                    "STEP_UP_COMPLETED",
                    "CANCELED",
                    "REVIEW_APPROVED",
                    "REVIEW_REJECTED",
                ]
            ),
            st.integers(0, 1),
        ),
        st.integers(0, len(bodies) - 1).map(payment),
        st.sampled_from(["t1", "t2"]).map(
            lambda txn: paid(f"f-{txn}", txn, kind=PaymentKind.PAYMENT_FAILED)
        ),
        st.builds(refund, refund_ids, refund_amounts),
        st.builds(refund_outcome, refund_ids, refund_amounts, st.booleans()),
        st.builds(verdict, decisions, st.sampled_from([T0, T0 + 1])),
        st.sampled_from(["c0", "c1"]).map(FreezeChanged),
        st.sampled_from(["c0", "c1"]).map(FreezeChanged),
        st.just(TICK),
    )
    events = list(life)
    for extra in draw(st.lists(noise, max_size=15)):
        events.insert(draw(st.integers(0, len(events))), extra)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(events) - 2))
        events[i], events[i + 1] = events[i + 1], events[i]

    toggles = st.sampled_from([False] * 5 + [True])
    advances = st.sampled_from([0, 1000, 1000, HOLD_MS // 2, HOLD_MS + 1])
    moves = [Move(e, draw(toggles), draw(toggles), draw(advances)) for e in events]
    return History(order, draw(st.booleans()), moves)


@dataclass(frozen=True)
class Played:
    ctx: Context
    event: OrderInput | Tick
    state: OrderState
    outputs: list[Output]


def play(history: History, through_json: bool) -> list[Played]:
    """Run the history; `through_json` stores and reloads the state between steps."""
    state: OrderState | None = None
    now = T0
    credits_frozen = refunds_frozen = False
    played = []
    for move in history.moves:
        now += move.advance_ms
        credits_frozen ^= move.toggle_credit_freeze
        refunds_frozen ^= move.toggle_refund_freeze
        event = Tick(now) if move.event == TICK else move.event
        assert not isinstance(event, str)
        if state is None and isinstance(event, Tick | FreezeChanged):
            continue  # the stage only ticks and notifies orders it has stored
        if through_json and state is not None:
            state = OrderState.from_dict(json.loads(json.dumps(state.to_dict())))
        ctx = Context(
            now_ms=now,
            credits_frozen=credits_frozen,
            refunds_frozen=refunds_frozen,
            require_risk_verdict=history.require_risk_verdict,
            correlation_id=f"corr-{len(played)}",
        )
        state, outputs = step(state, event, ctx)
        played.append(Played(ctx, event, state, outputs))
    return played


def entries(played: list[Played]) -> list[LedgerEntryOut]:
    return [o for p in played for o in p.outputs if isinstance(o, LedgerEntryOut)]


def _matches_order(history: History, payment: PaymentEvent) -> bool:
    order = history.created
    app_ok = order["app_id"] is None or payment.app_id == order["app_id"]
    return app_ok and (payment.amount_minor, payment.currency, payment.merchant_id) == (
        order["amount_minor"],
        "USD",
        "mch-1",
    )


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(histories())
def test_state_survives_storage_without_changing_behaviour(history: History) -> None:
    direct, stored = play(history, False), play(history, True)
    assert [p.outputs for p in direct] == [p.outputs for p in stored]
    assert [p.state for p in direct] == [p.state for p in stored]


@SETTINGS
@given(histories())
def test_money_moves_at_most_once_and_never_exceeds_what_was_paid(history: History) -> None:
    played = play(history, False)
    all_entries = entries(played)
    assert len({e.entry_id for e in all_entries}) == len(all_entries)
    credits = [e for e in all_entries if e.op is LedgerOp.CREDIT]
    assert len(credits) <= 1  # one payment per order is ever credited
    assert len(Counter((e.order_id, e.external_txn_id) for e in credits)) == len(credits)

    credited = debited = 0
    for p in played:
        for entry in (o for o in p.outputs if isinstance(o, LedgerEntryOut)):
            if entry.op is LedgerOp.CREDIT:
                credited += entry.amount_minor
            else:
                debited += entry.amount_minor
            assert debited <= credited
            # Every money movement has its audit record in the same step.
            assert any(
                isinstance(o, AuditOut) and o.inputs.get("entry_id") == entry.entry_id
                for o in p.outputs
            )


@SETTINGS
@given(histories())
def test_a_credit_is_validated_money_plus_the_locked_bonus(history: History) -> None:
    played = play(history, False)
    for index, p in enumerate(played):
        for credit in (o for o in p.outputs if isinstance(o, LedgerEntryOut)):
            if credit.op is not LedgerOp.CREDIT:
                continue
            assert not p.ctx.credits_frozen
            before = [q.event for q in played[: index + 1]]
            [payment] = {
                e
                for e in before
                if isinstance(e, PaymentEvent)
                and e.kind is PaymentKind.PAYMENT_SUCCEEDED
                and e.event_id == credit.caused_by
            }
            assert (payment.external_txn_id, payment.amount_minor, payment.currency) == (
                credit.external_txn_id,
                credit.amount_minor,
                credit.currency,
            )
            as_ordered = (payment.amount_minor, payment.currency) == (
                history.created["amount_minor"],
                "USD",
            )
            expected_bonus = history.created["promo_bonus_minor"] if as_ordered else 0
            assert credit.bonus_minor == expected_bonus
            approvals = [
                i for i, e in enumerate(before) if getattr(e, "type", None) == "REVIEW_APPROVED"
            ]
            if not _matches_order(history, payment):
                assert approvals
            verdicts = [i for i, e in enumerate(before) if isinstance(e, RiskVerdict)]
            first_verdict = before[verdicts[0]] if verdicts else None
            if isinstance(first_verdict, RiskVerdict) and first_verdict.decision in (
                "BLOCK",
                "REVIEW",
            ):
                assert any(i > verdicts[0] for i in approvals)


@SETTINGS
@given(histories())
def test_status_changes_follow_the_table_one_version_at_a_time(history: History) -> None:
    played = play(history, False)
    allowed = ALLOWED_MOVES | {(NO_ORDER, OrderStatus.CREATED)}
    status, version = None, 0
    for p in played:
        for change in (o for o in p.outputs if isinstance(o, StatusChange)):
            assert change.order_id == ORDER_ID
            assert (change.previous_status, change.version) == (status, version + 1)
            assert (change.previous_status, change.status) in allowed
            status, version = change.status, change.version
        assert (p.state.status, p.state.version) == (status, version)
        assert p.state.status == derive_status(p.state)
        assert (p.state.status is OrderStatus.ON_HOLD) == bool(p.state.hold_reasons)


def _the_fact(output: Output) -> Output:
    """The output without when and for whom it was said."""
    if isinstance(output, AlertOut):
        return replace(output, raised_at=0, correlation_id=None)
    if isinstance(output, AuditOut):
        return replace(output, at=0, correlation_id=None)
    assert isinstance(output, ReviewCase)
    return replace(output, opened_at=0, correlation_id=None)


@SETTINGS
@given(histories())
def test_an_output_id_always_names_the_same_fact(history: History) -> None:
    facts: dict[str, Output] = {}
    for p in play(history, False):
        refusals = [
            o for o in p.outputs if isinstance(o, AlertOut) and o.kind == "ILLEGAL_TRANSITION"
        ]
        refused = [
            o for o in p.outputs if isinstance(o, AuditOut) and o.action is AuditAction.REFUSED
        ]
        assert len(refusals) == len(refused)
        for output in p.outputs:
            if isinstance(output, StatusChange | LedgerEntryOut):
                continue
            key = (
                output.alert_id
                if isinstance(output, AlertOut)
                else output.audit_id
                if isinstance(output, AuditOut)
                else output.case_id
            )
            # Only the same input met again at the same version may say it again.
            assert facts.setdefault(key, _the_fact(output)) == _the_fact(output)
