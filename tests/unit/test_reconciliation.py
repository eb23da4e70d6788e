"""Reconciliation of one order (streams/domain/recon/machine.py): each break category from
a scenario made for it, the seed's 12.2 and 12.3, the wire records, and idempotence under
any order and repetition of the inputs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain.common.freeze import FreezeAction
from streams.domain.common.ids import entry_id
from streams.domain.common.outputs import AlertOut, AuditOut, Severity
from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.domain.common.time import Tick
from streams.domain.orders.inputs import Context, OrderEvent, OrderEventType
from streams.domain.orders.machine import step as order_step
from streams.domain.orders.outputs import AuditAction, LedgerEntryOut
from streams.domain.orders.state import OrderState
from streams.domain.recon.inputs import (
    BatchClosed,
    LedgerEntry,
    OrderSnapshot,
    ReconContext,
    ReconInput,
    SettlementLine,
    parse_settlement,
)
from streams.domain.recon.machine import PROOF_EVENT_PREFIX, ReconOutput, step
from streams.domain.recon.outputs import (
    ControlCommandOut,
    ReconAction,
    ReconAuditAction,
    ReconBreakOut,
    ReconCategory,
    ReconOutcome,
    SettlementProof,
)
from streams.domain.recon.state import ReconState, Wake
from tests.builders import (
    RECON_ACCOUNT as ACCOUNT,
)
from tests.builders import (
    RECON_AMOUNT as AMOUNT,
)
from tests.builders import (
    RECON_GRACE as GRACE,
)
from tests.builders import (
    RECON_MERCHANT as MERCHANT,
)
from tests.builders import (
    RECON_MINUTE as MINUTE,
)
from tests.builders import (
    RECON_ORDER_ID as ORDER_ID,
)
from tests.builders import (
    RECON_PROVIDER as PROVIDER,
)
from tests.builders import (
    RECON_T0 as T0,
)
from tests.builders import (
    recon_credit as credit,
)
from tests.builders import (
    recon_debit as debit,
)
from tests.builders import (
    recon_line as line,
)
from tests.builders import (
    recon_line_record as line_record,
)
from tests.builders import (
    recon_refund_line as refund_line,
)
from tests.builders import (
    recon_snapshot as snapshot,
)
from tests.builders import (
    recon_watermark as watermark,
)
from tests.unit.recon_machine_runner import (
    Recon,
    alerts,
    audits,
    breaks,
    commands,
    kinds,
    outcomes,
    proofs,
    run_of,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
CHAIN_KEYS = {
    "chain.order_event_id",
    "chain.payment_event_id",
    "chain.entry_id",
    "chain.settlement_record_id",
}

# --- matches -------------------------------------------------------------------------


@pytest.mark.parametrize("credit_first", [True, False])
def test_a_settled_payment_that_matches_its_credit_gets_one_matched_audit(
    credit_first: bool,
) -> None:
    inputs: list[ReconInput] = [snapshot(), credit(), line()]
    recon = run_of(*(inputs if credit_first else reversed(inputs)))
    recon.tick(T0 + 3 * GRACE)
    recon(watermark(T0 + 10 * GRACE))
    assert breaks(recon.log) == []
    [matched] = audits(recon.log)
    assert matched.action == ReconAuditAction.MATCHED
    assert matched.rule == "recon.payment-matches-credit"
    assert matched.inputs["chain.order_event_id"] == "created-1"
    assert matched.inputs["chain.payment_event_id"] == "pay-1"
    assert matched.inputs["chain.entry_id"] == entry_id(ORDER_ID, "CREDIT", "txn-1", None)
    assert matched.inputs["chain.settlement_record_id"] == "b1:1"
    assert [o.category for o in outcomes(recon.log)] == [None]
    assert recon.wake() == Wake(None, None, None)


def test_a_matched_refund_gets_its_own_matched_audit() -> None:
    recon = run_of(snapshot("REFUNDED"), credit(), line(), debit(at=T0 + 60 * MINUTE))
    recon(refund_line(settled_at=T0 + 61 * MINUTE))
    recon(watermark(T0 + 10 * GRACE))
    assert breaks(recon.log) == []
    rules = [a.rule for a in audits(recon.log)]
    assert rules == ["recon.payment-matches-credit", "recon.refund-matches-debit"]


# --- MISSING_CREDIT ------------------------------------------------------------------


def test_a_settled_payment_waits_out_its_grace_before_it_is_missing() -> None:
    recon = run_of(snapshot("PENDING_PAYMENT"), line(settled_at=T0 - MINUTE))
    due = T0 + GRACE  # the line arrived at T0, after it settled
    assert recon.wake() == Wake(due, None, None)
    assert recon.tick(due - 1) == []
    assert kinds(recon.tick(due)) == [("MISSING_CREDIT", "AUTO_CORRECTED")]
    assert recon.tick(due + GRACE) == []


def test_the_grace_counts_from_arrival_for_a_file_imported_late() -> None:
    recon = Recon()
    recon(snapshot("PENDING_PAYMENT"), at=T0)
    recon(line(settled_at=T0), at=T0 + 5 * GRACE)
    assert recon.wake().tick_at == T0 + 6 * GRACE
    assert recon.tick(T0 + 6 * GRACE - 1) == []


def test_missing_credit_is_auto_corrected_with_a_settlement_proof() -> None:
    recon = run_of(snapshot("PENDING_PAYMENT", app_id="app-7"), line(settled_at=T0 + 5))
    outputs = recon.tick(T0 + 5 + GRACE)
    [found] = breaks(outputs)
    assert found.category is ReconCategory.MISSING_CREDIT
    assert found.action is ReconAction.AUTO_CORRECTED
    assert (found.expected_amount_minor, found.expected_currency) == (None, None)
    assert (found.actual_amount_minor, found.actual_currency) == (AMOUNT, "USD")
    assert found.correlation_id == "corr-order"
    [proof] = proofs(outputs)
    assert proof.key == ORDER_ID
    assert proof.event == PaymentEvent(
        provider=PROVIDER,
        event_id=PROOF_EVENT_PREFIX + "b1:1",
        external_txn_id="txn-1",
        order_id=ORDER_ID,
        kind=PaymentKind.PAYMENT_SUCCEEDED,
        amount_minor=AMOUNT,
        currency="USD",
        merchant_id=MERCHANT,
        app_id="app-7",
        occurred_at=T0 + 5,
    )
    [audit] = audits(outputs)
    assert audit.action == ReconAuditAction.AUTO_CORRECTED
    assert audit.inputs["break_id"] == found.break_id
    assert audit.inputs["chain.payment_event_id"] == "settlement:b1:1"
    assert audit.inputs["chain.entry_id"] == entry_id(ORDER_ID, "CREDIT", "txn-1", None)
    assert [o.category for o in outcomes(outputs)] == [ReconCategory.MISSING_CREDIT]


@pytest.mark.parametrize(
    ("order", "the_line", "reason"),
    [
        (None, line(), "ORDER_UNKNOWN"),
        (snapshot("ON_HOLD", hold_reasons=frozenset({"RISK_BLOCK"})), line(), "ORDER_ON_HOLD"),
        (snapshot("ON_HOLD", hold_reasons=frozenset({"STEP_UP"})), line(), "ORDER_ON_HOLD"),
        (snapshot("CANCELED"), line(), "ORDER_CANCELED"),
        (snapshot("PAYMENT_CONFIRMED"), line(), "ORDER_PAYMENT_CONFIRMED"),
        (snapshot("PENDING_PAYMENT"), line(merchant_id="mch-other"), "MERCHANT_MISMATCH"),
        (snapshot("PENDING_PAYMENT"), line(txn=None), "NO_EXTERNAL_TXN_ID"),
    ],
)
def test_missing_credit_goes_to_a_reviewer_when_the_order_would_not_take_it(
    order: OrderSnapshot | None, the_line: SettlementLine, reason: str
) -> None:
    recon = run_of(*([order] if order else []), the_line)
    outputs = recon.tick(T0 + 2 * GRACE)
    assert kinds(outputs) == [("MISSING_CREDIT", "MANUAL_REVIEW")]
    assert breaks(outputs)[0].evidence["reason"] == reason
    assert proofs(outputs) == []


def test_a_second_charge_on_a_credited_order_is_not_auto_corrected() -> None:
    recon = run_of(snapshot("PENDING_PAYMENT"), credit(txn="txn-1"), line(txn="txn-2"))
    outputs = recon.tick(T0 + 2 * GRACE)
    assert kinds(outputs) == [("MISSING_CREDIT", "MANUAL_REVIEW")]
    evidence = breaks(outputs)[0].evidence
    assert evidence["reason"] == "CREDITED_ANOTHER_TXN"
    assert evidence["ledger.credited_txn_ids"] == "txn-1"


# --- the seed's 12.2 and 12.3, through the real order stage --------------------------


def _order_event(type_: str, event_id: str, **fields: Any) -> OrderEvent:
    values: dict[str, Any] = {
        "event_id": event_id,
        "type": OrderEventType(type_),
        "order_id": ORDER_ID,
        "occurred_at": T0,
        "account_id": ACCOUNT,
        "user_id": "user-1",
        "amount_minor": AMOUNT if type_ == "CREATED" else 0,
        "currency": "USD",
        "provider": PROVIDER,
        "merchant_id": MERCHANT,
    }
    return OrderEvent(**(values | fields))


def _callback(amount: int = AMOUNT) -> PaymentEvent:
    return PaymentEvent(
        provider=PROVIDER,
        event_id="pay-1",
        external_txn_id="txn-1",
        order_id=ORDER_ID,
        kind=PaymentKind.PAYMENT_SUCCEEDED,
        amount_minor=amount,
        currency="USD",
        merchant_id=MERCHANT,
        app_id=None,
        occurred_at=T0,
    )


class Orders:
    """The real order stage, for the scenarios that cross both stages."""

    def __init__(self) -> None:
        self.state: OrderState | None = None
        self.ledger: list[LedgerEntryOut] = []

    def __call__(self, event: OrderEvent | PaymentEvent, at: int) -> list[Any]:
        ctx = Context(now_ms=at, credits_frozen=False, refunds_frozen=False)
        self.state, outputs = order_step(self.state, event, ctx)
        self.ledger += [o for o in outputs if isinstance(o, LedgerEntryOut)]
        return outputs

    def snapshot(self) -> OrderSnapshot:
        assert self.state is not None
        return OrderSnapshot.from_order_state(self.state, "created-1")


def test_seed_12_2_callback_down_settlement_proves_the_payment() -> None:
    orders, recon = Orders(), Recon()
    orders(_order_event("CREATED", "created-1"), at=T0)
    orders(_order_event("PAYMENT_INITIATED", "init-1"), at=T0 + 1000)
    recon(orders.snapshot(), at=T0 + 1000)
    # The customer paid at T0 + 2 min; the callback never came. The file did.
    recon(line(settled_at=T0 + 2 * MINUTE), at=T0 + 3 * MINUTE)
    outputs = recon.tick(T0 + 3 * MINUTE + GRACE)
    assert kinds(outputs) == [("MISSING_CREDIT", "AUTO_CORRECTED")]
    [proof] = proofs(outputs)

    # The order stage credits the proof exactly as it would have credited the callback.
    now = T0 + 3 * MINUTE + GRACE
    orders(proof.event, at=now)
    [booked] = orders.ledger
    assert booked.entry_id == entry_id(ORDER_ID, "CREDIT", "txn-1", None)
    assert (booked.amount_minor, booked.external_txn_id) == (AMOUNT, "txn-1")
    assert booked.caused_by == "settlement:b1:1"

    # Fed back, the credit matches the line: one matched audit, no second break.
    after = recon(LedgerEntry.from_record(booked.to_record()), at=now + 1)
    after += recon(orders.snapshot(), at=now + 2)
    after += recon.tick(now + 10 * GRACE)
    after += recon(watermark(now + 10 * GRACE), at=now + 10 * GRACE)
    assert breaks(after) == []
    [matched] = audits(after)
    assert matched.action == ReconAuditAction.MATCHED
    assert matched.inputs["chain.payment_event_id"] == "settlement:b1:1"
    assert len(breaks(recon.log)) == 1

    # The callback, arriving later still, credits nothing more: the order stage already
    # took a success for txn-1 (orders._duplicate_of compares external txn ids).
    late = orders(_callback(), at=now + 11 * GRACE)
    assert [o for o in late if isinstance(o, LedgerEntryOut)] == []
    assert [o.action for o in late if isinstance(o, AuditOut)] == [AuditAction.DUPLICATE_IGNORED]
    assert len(orders.ledger) == 1


def test_seed_12_3_provider_settled_another_amount_than_ordered() -> None:
    orders, recon = Orders(), Recon()
    orders(_order_event("CREATED", "created-1"), at=T0)
    # The callback carries the amount the provider really took; the order stage holds it.
    orders(_callback(amount=AMOUNT - 1), at=T0 + MINUTE)
    assert orders.ledger == []
    recon(orders.snapshot(), at=T0 + MINUTE)
    recon(line(amount=AMOUNT - 1), at=T0 + 2 * MINUTE)
    outputs = recon.tick(T0 + 2 * MINUTE + GRACE)
    [found] = breaks(outputs)
    assert (found.category, found.action) == (
        ReconCategory.AMOUNT_MISMATCH,
        ReconAction.MANUAL_REVIEW,
    )
    assert (found.expected_amount_minor, found.actual_amount_minor) == (AMOUNT, AMOUNT - 1)
    assert proofs(outputs) == []


def test_a_credit_that_differs_from_the_settled_line_is_an_amount_mismatch() -> None:
    recon = run_of(snapshot(), credit(amount=AMOUNT))
    outputs = recon(line(amount=AMOUNT + 50))
    [found] = breaks(outputs)
    assert (found.category, found.action) == (
        ReconCategory.AMOUNT_MISMATCH,
        ReconAction.MANUAL_REVIEW,
    )
    assert (found.expected_amount_minor, found.actual_amount_minor) == (AMOUNT, AMOUNT + 50)
    assert proofs(outputs) == [] and commands(outputs) == []
    # The same fact found again from the other side is not reported twice.
    assert breaks(recon.tick(T0 + 5 * GRACE)) == []


def test_a_credit_in_another_currency_than_settled_is_a_currency_mismatch() -> None:
    recon = run_of(snapshot(), credit(currency="USD"))
    [found] = breaks(recon(line(currency="EUR")))
    assert (found.category, found.action) == (
        ReconCategory.CURRENCY_MISMATCH,
        ReconAction.MANUAL_REVIEW,
    )
    assert (found.expected_currency, found.actual_currency) == ("USD", "EUR")


def test_an_amount_mismatch_found_before_the_credit_is_reported_once() -> None:
    recon = run_of(snapshot("ON_HOLD", hold_reasons=frozenset({"MISMATCH"})))
    recon(line(amount=AMOUNT + 1))
    assert kinds(recon.tick(T0 + 2 * GRACE)) == [("AMOUNT_MISMATCH", "MANUAL_REVIEW")]
    # A reviewer lets the order's amount through; it still differs from the line.
    assert breaks(recon(credit(amount=AMOUNT))) == []
    # Or the provider's amount, which then matches.
    recon2 = run_of(snapshot("ON_HOLD", hold_reasons=frozenset({"MISMATCH"})))
    recon2(line(amount=AMOUNT + 1))
    recon2.tick(T0 + 2 * GRACE)
    outputs = recon2(credit(amount=AMOUNT + 1))
    assert [a.action for a in audits(outputs)] == [ReconAuditAction.MATCHED]


# --- MISSING_AT_PROVIDER -------------------------------------------------------------


def test_a_credit_the_closed_batches_do_not_hold_freezes_the_account() -> None:
    recon = run_of(snapshot(), credit(at=T0))
    assert recon.wake() == Wake(None, (PROVIDER, MERCHANT), T0 + GRACE)
    assert recon(watermark(T0 + GRACE - 1)) == []
    outputs = recon(watermark(T0 + GRACE))
    [found] = breaks(outputs)
    assert (found.category, found.action) == (
        ReconCategory.MISSING_AT_PROVIDER,
        ReconAction.FROZEN,
    )
    assert (found.expected_amount_minor, found.actual_amount_minor) == (AMOUNT, None)
    [command] = commands(outputs)
    assert command.action is FreezeAction.FREEZE_CREDITS
    assert command.scope == f"account:{ACCOUNT}"
    assert command.key == f"account:{ACCOUNT}|credits"  # the contract: scope and target
    assert command.issued_by == "reconciliation"
    assert found.break_id in command.reason
    [page] = alerts(outputs)
    assert (page.kind, page.severity) == ("MISSING_AT_PROVIDER", Severity.PAGE)
    assert page.details["command_id"] == command.command_id
    [audit] = audits(outputs)
    assert audit.action == ReconAuditAction.FROZEN
    assert audit.inputs["chain.entry_id"] == entry_id(ORDER_ID, "CREDIT", "txn-1", None)
    assert audit.inputs["chain.settlement_record_id"] == ""
    assert recon(watermark(T0 + 9 * GRACE)) == []
    assert recon.wake() == Wake(None, None, None)


def test_another_merchants_watermark_says_nothing_about_this_order() -> None:
    recon = run_of(snapshot(), credit())
    assert recon(watermark(T0 + 9 * GRACE, merchant="mch-other")) == []


def test_the_watermark_waits_for_the_order_to_know_its_merchant() -> None:
    recon = run_of(credit(), watermark(T0 + 9 * GRACE))
    assert recon.wake() == Wake(None, None, None)
    assert kinds(recon(snapshot())) == [("MISSING_AT_PROVIDER", "FROZEN")]


# --- REFUND_STATUS_MISMATCH ----------------------------------------------------------


def test_a_settled_refund_the_order_never_debited() -> None:
    recon = run_of(snapshot("REFUND_IN_PROGRESS"), credit(), line())
    recon(refund_line(settled_at=T0 + 10 * MINUTE))
    outputs = recon.tick(T0 + 3 * GRACE)
    [found] = breaks(outputs)
    assert (found.category, found.action) == (
        ReconCategory.REFUND_STATUS_MISMATCH,
        ReconAction.MANUAL_REVIEW,
    )
    assert found.evidence["reason"] == "SETTLED_NOT_DEBITED"
    assert found.evidence["order.status"] == "REFUND_IN_PROGRESS"


def test_a_debit_the_provider_never_settled() -> None:
    recon = run_of(snapshot("REFUNDED"), credit(), line(), debit(at=T0 + 60 * MINUTE))
    assert recon(watermark(T0 + 60 * MINUTE + GRACE - 1)) == []
    outputs = recon(watermark(T0 + 60 * MINUTE + GRACE))
    [found] = breaks(outputs)
    assert (found.category, found.action) == (
        ReconCategory.REFUND_STATUS_MISMATCH,
        ReconAction.MANUAL_REVIEW,
    )
    assert found.evidence["reason"] == "DEBITED_NOT_SETTLED"
    assert (found.expected_amount_minor, found.actual_amount_minor) == (AMOUNT, None)
    assert commands(outputs) == []


# --- DUPLICATE_SETTLEMENT ------------------------------------------------------------


def test_a_second_line_for_one_transaction_is_a_duplicate_settlement() -> None:
    recon = run_of(snapshot(), credit(), line("b1:1"))
    assert recon(line("b2:7", settled_at=T0 + 70 * MINUTE)) == []
    assert recon.wake().tick_at == T0 + 70 * MINUTE + GRACE
    outputs = recon.tick(T0 + 70 * MINUTE + GRACE)
    [found] = breaks(outputs)
    assert (found.category, found.action) == (
        ReconCategory.DUPLICATE_SETTLEMENT,
        ReconAction.MANUAL_REVIEW,
    )
    assert found.evidence["chain.settlement_record_id"] == "b1:1,b2:7"
    assert (found.evidence["line.0.batch_id"], found.evidence["line.1.batch_id"]) == ("b1", "b2")
    assert len([a for a in audits(recon.log) if a.action == ReconAuditAction.MATCHED]) == 1


def test_a_redelivered_line_is_only_deduplicated() -> None:
    recon = run_of(snapshot(), credit(), line("b1:1"), line("b1:1"), line("b1:1"))
    recon.tick(T0 + 5 * GRACE)
    assert breaks(recon.log) == []
    assert len(audits(recon.log)) == 1


# --- CHARGEBACK ----------------------------------------------------------------------


@pytest.mark.parametrize("credited", [True, False])
def test_a_chargeback_raises_an_alert_and_an_audit_but_no_break(credited: bool) -> None:
    recon = run_of(snapshot(), *([credit(), line()] if credited else []))
    recon(line("b3:1", kind="CHARGEBACK", settled_at=T0 + 5 * MINUTE))
    outputs = recon.tick(T0 + 3 * GRACE)
    assert breaks(outputs) == []
    [alert] = alerts(outputs)
    assert (alert.kind, alert.severity) == ("CHARGEBACK", Severity.WARN)
    assert alert.details["credited"] == str(credited).lower()
    [audit] = audits(outputs)
    assert audit.action == ReconAuditAction.CHARGEBACK
    assert audit.outcome == ("CREDITED_CHARGED_BACK" if credited else "NOT_CREDITED")
    assert recon.tick(T0 + 9 * GRACE) == []


# --- the correlation chain, the wire records, the stored state ------------------------


def _every_kind_of_output() -> list[ReconOutput]:
    logs: list[ReconOutput] = []
    scenarios: list[list[ReconInput]] = [
        [snapshot(), credit(), line()],
        [snapshot("PENDING_PAYMENT"), line()],
        [snapshot(), credit()],
        [snapshot(), credit(), line(amount=1)],
        [snapshot(), credit(), line(), line("b9:9")],
        [snapshot(), line("b3:1", kind="CHARGEBACK")],
        [snapshot("REFUNDED"), credit(), line(), debit()],
    ]
    for inputs in scenarios:
        recon = run_of(*inputs)
        recon.tick(T0 + 3 * GRACE)
        recon(watermark(T0 + 9 * GRACE))
        logs += recon.log
    return logs


def test_every_audit_carries_the_correlation_chain() -> None:
    logged = audits(_every_kind_of_output())
    assert {a.action for a in logged} == set(ReconAuditAction)
    for audit in logged:
        assert set(audit.inputs) >= CHAIN_KEYS, audit
        assert audit.subject == audit.key == ORDER_ID
        assert audit.actor is None


def _schema(name: str) -> dict:
    return fastavro.parse_schema(json.loads((SCHEMAS / f"{name}.v1.avsc").read_text()))


@pytest.mark.parametrize(
    ("schema", "output_type"),
    [
        ("ReconBreak", ReconBreakOut),
        ("ControlCommand", ControlCommandOut),
        ("Alert", AlertOut),
        ("AuditRecord", AuditOut),
    ],
)
def test_records_match_the_contract_schemas(schema: str, output_type: type) -> None:
    parsed = _schema(schema)
    records = [o.to_record() for o in _every_kind_of_output() if isinstance(o, output_type)]
    assert records
    for record in records:
        assert list(record) == [f["name"] for f in parsed["fields"]]
        assert fastavro.validation.validate(record, parsed, raise_errors=True)


def test_every_category_and_action_is_a_symbol_of_the_schema() -> None:
    fields = {f["name"]: f["type"] for f in _schema("ReconBreak")["fields"]}
    assert fields["category"]["symbols"] == [c.value for c in ReconCategory]
    assert fields["action"]["symbols"] == [a.value for a in ReconAction]


def test_settlement_records_round_trip_through_the_wire_schema() -> None:
    parsed = _schema("SettlementRecord")
    close = BatchClosed("b1:close", "b1", PROVIDER, MERCHANT, T0, 3, 300, T0 - 1)
    for record in (line().to_record(), refund_line().to_record(), close.to_record()):
        assert fastavro.validation.validate(record, parsed, raise_errors=True)
        assert parse_settlement(record).to_record() == record
    assert close.watermark() == watermark(T0 - 1)


@pytest.mark.parametrize(
    "change",
    [
        {"order_id": None},
        {"kind": None},
        {"type": "FOOTER"},
        {"record_id": ""},
        {"amount_minor": "10.00"},
        {"settled_at": None},
    ],
)
def test_settlement_records_to_dead_letter_are_refused(change: dict) -> None:
    with pytest.raises(ValueError):
        parse_settlement(line_record() | change)


def test_the_stored_state_round_trips_and_leaves_defaults_out() -> None:
    recon = run_of(snapshot(), credit(), line(), line("b2:2"), debit(), watermark(T0))
    assert recon.state is not None
    encoded = json.dumps(recon.state.to_dict())
    assert ReconState.from_dict(json.loads(encoded)) == recon.state
    assert set(ReconState(order_id="o").to_dict()) == {"order_id"}


def test_an_older_snapshot_never_replaces_a_newer_one() -> None:
    recon = run_of(snapshot("CREDITED", version=4), snapshot("PENDING_PAYMENT", version=2))
    assert recon.state is not None and recon.state.order is not None
    assert recon.state.order.status == "CREDITED"


def test_caller_mistakes_raise() -> None:
    ctx = ReconContext(now_ms=T0)
    with pytest.raises(ValueError):
        step(None, Tick(T0), ctx)
    with pytest.raises(ValueError):
        step(None, watermark(T0), ctx)
    state, _ = step(None, snapshot(), ctx)
    with pytest.raises(ValueError):
        step(state, credit(order_id="ord-2"), ctx)
    with pytest.raises(ValueError):
        step(state, Tick(T0 + 1), ctx)


# --- idempotence: any order, any repetition -----------------------------------------

# Facts one order can meet; each scenario below picks some, then they arrive shuffled and
# repeated, all before any grace ends, followed by the watermark and a late tick.
FACTS: dict[str, ReconInput] = {
    "snapshot_pending": snapshot("PENDING_PAYMENT", version=2),
    "snapshot_credited": snapshot("CREDITED", version=3),
    "credit": credit(),
    "credit_other_amount": credit(amount=AMOUNT + 7),
    "line": line("b1:1"),
    "line_again_elsewhere": line("b2:5", settled_at=T0 + 2 * MINUTE),
    "debit": debit(at=T0 + 2 * MINUTE),
    "refund_line": refund_line("b3:1", settled_at=T0 + 3 * MINUTE),
    "chargeback": line("b4:1", kind="CHARGEBACK"),
}


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    names = sorted(FACTS)
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    # One ledger side per payment: a credit, or one for another amount.
    if "credit" in chosen and "credit_other_amount" in chosen:
        chosen.remove("credit_other_amount")
    repeats = draw(st.lists(st.sampled_from(chosen), max_size=6))
    return chosen, draw(st.permutations(chosen + repeats))


def _play(order: list[str]) -> list[ReconOutput]:
    recon = Recon()
    for name in order:
        recon(FACTS[name], at=T0 + 5 * MINUTE)
    recon(watermark(T0 + 5 * GRACE), at=T0 + 5 * GRACE)
    recon.tick(T0 + 6 * GRACE)
    return recon.log


def _ids(outputs: list[ReconOutput]) -> list[str]:
    ids = []
    for output in outputs:
        if isinstance(output, ReconBreakOut):
            ids.append(output.break_id)
        elif isinstance(output, AuditOut):
            ids.append(output.audit_id)
        elif isinstance(output, AlertOut):
            ids.append(output.alert_id)
        elif isinstance(output, ControlCommandOut):
            ids.append(output.command_id)
        elif isinstance(output, SettlementProof):
            ids.append(output.event.event_id)
    return ids


def _signature(output: ReconOutput) -> tuple[str, str]:
    if isinstance(output, ReconBreakOut):
        return ("break", f"{output.category}/{output.action}")
    if isinstance(output, AuditOut):
        return ("audit", f"{output.action}/{output.rule}")
    if isinstance(output, AlertOut):
        return ("alert", f"{output.kind}/{output.severity}")
    if isinstance(output, ReconOutcome):
        return ("outcome", str(output.category))
    return (type(output).__name__, "")


def _records(outputs: list[ReconOutput]) -> list[str]:
    return sorted(
        json.dumps(o.to_record(), sort_keys=True)
        for o in outputs
        if isinstance(o, ReconBreakOut | AuditOut | AlertOut | ControlCommandOut)
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(deliveries())
def test_each_fact_is_reported_once_whatever_the_order_and_repetition(
    delivery: tuple[list[str], list[str]],
) -> None:
    chosen, shuffled = delivery
    reference, played = _play(chosen), _play(shuffled)
    ids = _ids(played)
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    assert sorted(map(_signature, played)) == sorted(map(_signature, reference))
    assert all(n == 1 for n in Counter(b.category for b in breaks(played)).values())
    # Which of two lines for one transaction is "the second" is arrival order, and the
    # outputs name it; without such a pair, every record is the same in any order.
    if not {"line", "line_again_elsewhere"} <= set(chosen):
        assert sorted(ids) == sorted(_ids(reference))
        assert _records(played) == _records(reference)
