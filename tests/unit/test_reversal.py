"""An operator's reversal of a wrong credit (issue 17, item 6): the order machine books one
REVERSAL whatever the number of requests, the order ends REVERSED, the balance nets to
what it was before the credit, and reconciliation raises no break for it."""

from __future__ import annotations

import re
from dataclasses import asdict, replace

import pytest

import tests.unit.order_machine_runner as om
import tests.unit.recon_machine_runner as rc
from streams import topics
from streams.codecs import default_catalog
from streams.domain.common.ids import entry_id
from streams.domain.common.payments import PaymentEvent
from streams.domain.orders.inputs import OrderEvent, OrderEventType, RiskDecision, RiskVerdict
from streams.domain.orders.outputs import AuditAction, LedgerOp, LedgerReason
from streams.domain.orders.state import OrderStatus
from streams.domain.recon.inputs import LedgerEntry
from streams.domain.recon.outputs import ReconAuditAction
from streams.kafka_clients import ConsumedRecord
from streams.ops import reversals
from streams.stages.balances import apply_entry
from streams.stages.orders import retirable
from streams.stages.reconciliation import matched
from tests.builders import recon_ledger_entry

REVERSAL_ID = entry_id(om.ORDER_ID, "REVERSAL", "txn-1", None)


def _balance(run: om.Run) -> dict[str, int]:
    balance: dict[str, int] = {}
    for entry in om.ledger(run.log):
        balance = apply_entry(balance, entry.to_record())
    return balance


def test_a_credited_order_is_reversed_once_with_a_deterministic_id() -> None:
    run = om.credited_run()
    [credit] = om.ledger(run.log)
    outputs = run(om.reversal())
    [reversal] = om.ledger(outputs)
    assert reversal.entry_id == REVERSAL_ID
    assert (reversal.op, reversal.reason) == (LedgerOp.REVERSAL, LedgerReason.OPERATOR_REVERSAL)
    # Exactly what the credit put on the account, bonus included, so the balance nets out.
    assert (reversal.amount_minor, reversal.bonus_minor) == (om.AMOUNT, om.BONUS)
    assert (reversal.account_id, reversal.currency) == (credit.account_id, credit.currency)
    assert reversal.external_txn_id == credit.external_txn_id
    assert reversal.caused_by == "rev-1"
    assert _balance(run) == {"USD": 0}
    assert [(old, new) for old, new, _ in om.moves(outputs)] == [("CREDITED", "REVERSED")]
    [audit] = [a for a in om.audits(outputs) if a.action == AuditAction.REVERSAL]
    assert audit.actor == "ann@ops"
    assert audit.inputs["reason"] == "credited in error"
    assert audit.inputs["reversed_entry_id"] == credit.entry_id
    assert audit.inputs["entry_id"] == REVERSAL_ID
    assert audit.outcome == "BOOKED"


def test_the_same_request_twice_is_a_duplicate_and_books_nothing() -> None:
    run = om.credited_run()
    run(om.reversal())
    again = run(om.reversal())
    assert om.ledger(again) == [] and om.moves(again) == []
    [audit] = om.audits(again)
    assert (audit.action, audit.inputs["why"]) == (
        AuditAction.DUPLICATE_IGNORED, "order event already applied")


def test_another_request_for_a_reversed_credit_is_ignored_with_its_reason() -> None:
    run = om.credited_run()
    run(om.reversal())
    again = run(om.reversal("rev-2", actor="bob@ops", reason="also wrong"))
    assert om.ledger(again) == [] and om.alerts(again) == []
    [audit] = om.audits(again)
    assert (audit.action, audit.outcome, audit.actor) == (
        AuditAction.IGNORED, "ALREADY_REVERSED", "bob@ops")
    assert run.status is OrderStatus.REVERSED
    assert [e.entry_id for e in om.ledger(run.log)].count(REVERSAL_ID) == 1


@pytest.mark.parametrize(
    ("events", "why"),
    [
        ([om.created(), om.order_event("PAYMENT_INITIATED")], "not allowed while PENDING_PAYMENT"),
        ([om.created(), om.paid(amount_minor=1)], "not allowed while ON_HOLD"),
        ([om.created(), om.paid(), om.refund_request(amount=om.AMOUNT // 2)],
         "not allowed while REFUND_IN_PROGRESS"),
        ([om.created(), om.paid(), om.refund_request(amount=1), om.refund_result(amount=1)],
         "1 of the credit was already refunded"),
    ],
    ids=["not-paid", "held", "refund-in-flight", "partly-refunded"],
)
def test_a_reversal_the_order_cannot_take_is_refused_and_audited(
    events: list, why: str
) -> None:
    run = om.run_of(*events)
    before = run.state
    outputs = run(om.reversal())
    assert om.ledger(outputs) == [] and run.state is not None
    assert om.alert_kinds(outputs) == ["ILLEGAL_TRANSITION"]
    [audit] = om.audits(outputs)
    assert audit.action == AuditAction.REFUSED and why in audit.inputs["reason"]
    assert before is not None and run.state.emitted_entry_ids == before.emitted_entry_ids


def test_an_entry_that_is_not_this_orders_credit_is_refused() -> None:
    run = om.credited_run()
    other = entry_id(om.ORDER_ID, "CREDIT", "txn-other", None)
    outputs = run(om.reversal(entry=other))
    assert om.ledger(outputs) == [] and run.status is OrderStatus.CREDITED
    [audit] = om.audits(outputs)
    assert f"entry {other} is not the credit of order {om.ORDER_ID}" in audit.inputs["reason"]


def test_a_withheld_bonus_is_not_taken_back() -> None:
    withheld = RiskVerdict(om.ORDER_ID, RiskDecision.ALLOW, 10, ("promo_bonus_withheld",), om.T0)
    run = om.run_of(om.created(), withheld, om.paid())
    [reversal] = om.ledger(run(om.reversal()))
    assert reversal.bonus_minor == 0 and _balance(run) == {"USD": 0}


def test_a_reversed_order_takes_no_refund_and_is_ended() -> None:
    run = om.credited_run()
    run(om.reversal())
    outputs = run(om.refund_request())
    assert om.alert_kinds(outputs) == ["ILLEGAL_TRANSITION"] and om.ledger(outputs) == []
    assert run.state is not None and retirable(run.state)


@pytest.mark.parametrize("missing", ["entry_id", "actor", "reason"])
def test_a_reversal_request_needs_what_who_and_why(missing: str) -> None:
    with pytest.raises(ValueError, match=f"REVERSAL_REQUESTED needs a non-empty {missing}"):
        om.reversal(**{missing: " "})
    # The wire record (OrderEvent v2) carries the entry id and the reason into the machine.
    record = asdict(om.reversal()) | {"type": OrderEventType.REVERSAL_REQUESTED.value}
    assert OrderEvent.from_record(record) == om.reversal()


# --- reconciliation ------------------------------------------------------------------


def _reversal_entry() -> LedgerEntry:
    return recon_ledger_entry(LedgerOp.REVERSAL, caused_by="rev-1", at=rc.T0 + rc.MINUTE)


def test_a_reversed_credit_no_line_covers_is_no_break() -> None:
    recon = rc.run_of(rc.snapshot("REVERSED", version=4), rc.credit(at=rc.T0), _reversal_entry())
    outputs = recon(rc.watermark(rc.T0 + 9 * rc.GRACE))
    assert rc.breaks(outputs) == [] and rc.commands(outputs) == []
    assert recon.state is not None and matched(recon.state)


def test_a_reversed_credit_still_matches_the_providers_line() -> None:
    recon = rc.run_of(rc.snapshot("REVERSED", version=4), rc.credit(), _reversal_entry())
    recon(rc.line())
    recon(rc.watermark(rc.T0 + 9 * rc.GRACE))
    assert rc.breaks(recon.log) == []
    assert [a.action for a in rc.audits(recon.log)] == [ReconAuditAction.MATCHED]
    assert recon.state is not None and matched(recon.state)


def test_without_the_reversal_the_same_credit_is_a_break() -> None:
    # The counterpart of the test above, so that one cannot pass for another reason.
    recon = rc.run_of(rc.snapshot(), rc.credit(at=rc.T0))
    assert rc.kinds(recon(rc.watermark(rc.T0 + 9 * rc.GRACE))) == [
        ("MISSING_AT_PROVIDER", "FROZEN")]


# --- the operator's command (streams/ops/reversals.py), without a broker --------------


def _ledger(*entries: dict) -> list[ConsumedRecord]:
    catalog = default_catalog()
    return [ConsumedRecord(topics.CREDITS, 0, offset, e["account_id"].encode(),
                           catalog.encode("LedgerEntry", e), {}, om.T0)
            for offset, e in enumerate(entries)]


def _booked(*events: OrderEvent | PaymentEvent) -> list[dict]:
    run = om.run_of(*events)
    return [entry.to_record() for entry in om.ledger(run.log)]


def test_the_command_sends_the_order_stage_what_it_needs_and_nothing_else() -> None:
    [credit] = _booked(om.created(), om.paid())
    found = reversals.lookup(_ledger(credit), credit["entry_id"])
    request = reversals.plan(found, credit["entry_id"], " ann@ops ", "credited in error", 7)
    assert request.reversal_entry_id == REVERSAL_ID
    event = OrderEvent.from_record(default_catalog().decode(
        "OrderEvent", default_catalog().encode("OrderEvent", request.event)))
    assert event == replace(event, type=OrderEventType.REVERSAL_REQUESTED, actor="ann@ops",
                            entry_id=credit["entry_id"], reason="credited in error")
    # The id depends on the entry alone: a repeated request is the same event.
    again = reversals.plan(found, credit["entry_id"], "bob@ops", "other words", 9)
    assert again.event["event_id"] == event.event_id
    # Fed to the machine, the request books exactly the reversal the command announced.
    run = om.run_of(om.created(), om.paid())
    [reversal] = om.ledger(run(event))
    assert reversal.entry_id == request.reversal_entry_id
    assert request.audit["action"] == "REVERSAL_REQUESTED_ISSUED"
    assert request.audit["inputs"]["reason"] == "credited in error"


def test_the_command_refuses_what_cannot_be_reversed() -> None:
    credit, debit = _booked(om.created(), om.paid(), om.refund_request(amount=1),
                            om.refund_result(amount=1))
    [_, reversal] = _booked(om.created(), om.paid(), om.reversal())
    records = _ledger(credit, debit)
    with pytest.raises(reversals.OperatorError, match="--by and --reason must not be empty"):
        reversals.plan(reversals.lookup(records, credit["entry_id"]), credit["entry_id"],
                       "ann", "  ", 1)
    cases = [
        (records, "le_nope", "no ledger entry 'le_nope' on topup.credits"),
        (records, debit["entry_id"], "is a DEBIT (REFUND), not a CREDIT"),
        (_ledger(credit, reversal), credit["entry_id"], f"already reversed by {REVERSAL_ID}"),
    ]
    for ledger, wanted, why in cases:
        with pytest.raises(reversals.RefusedReversal, match=re.escape(why)) as refused:
            reversals.plan(reversals.lookup(ledger, wanted), wanted, "ann", "wrong", 1)
        assert refused.value.audit["action"] == "REVERSAL_REQUESTED_REFUSED"
        assert refused.value.audit["inputs"]["why"] == str(refused.value)
