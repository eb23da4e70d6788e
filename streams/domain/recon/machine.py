"""Reconciliation of one order: `step(state, input, ctx) -> (new state, outputs)`.

Each step records its input, then answers every question the state can now answer, each
once (`recon_state.Check`):

- A line meets its ledger entry (a PAYMENT line the CREDIT with its external txn id, a
  REFUND line the DEBIT with its refund id): they agree -> one MATCHED audit; they differ
  -> AMOUNT_MISMATCH / CURRENCY_MISMATCH, MANUAL_REVIEW.
- A line passes its grace (`due_at`) without one:
  PAYMENT -> the amount or currency differs from the order: AMOUNT_MISMATCH /
  CURRENCY_MISMATCH, MANUAL_REVIEW; the order is unknown, paid, ended, held or for another
  merchant: MISSING_CREDIT, MANUAL_REVIEW; otherwise MISSING_CREDIT, AUTO_CORRECTED, with a
  SettlementProof the order stage credits like the callback it stands for.
  REFUND -> REFUND_STATUS_MISMATCH, MANUAL_REVIEW.
  CHARGEBACK -> a CHARGEBACK alert (WARN) and audit saying whether the money was credited;
  no break, as the contract has no category for it and the ledger is not wrong (yet).
- A ledger entry the provider's closed batches cover (`covers_until` >= its time + grace)
  without a line: CREDIT -> MISSING_AT_PROVIDER, FROZEN: a FREEZE_CREDITS command for the
  account and a PAGE alert; DEBIT -> REFUND_STATUS_MISMATCH, MANUAL_REVIEW.
- A REVERSAL (an operator's correction) takes its credit back: that credit no longer
  waits for a line (no MISSING_AT_PROVIDER for money the ledger no longer holds), and a
  line that does come still meets the credit: MATCHED.
- A further line for a transaction that has one, past its grace: DUPLICATE_SETTLEMENT,
  MANUAL_REVIEW, one per extra line. A re-delivered record id is only ignored.

Every break comes with an audit record carrying the correlation chain (order event ->
payment event -> ledger entry -> settlement record) and a ReconOutcome for the rate stage.
Ids derive from the fact, never from arrival order, and outputs carry `ctx.now_ms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from streams.domain.common.evolve import evolve
from streams.domain.common.freeze import FreezeAction
from streams.domain.common.ids import derived_id, entry_id
from streams.domain.common.outputs import AlertOut, AuditOut, Severity
from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.domain.common.time import Tick
from streams.domain.orders.state import OrderStatus
from streams.domain.recon.inputs import (
    EntryOp,
    LedgerEntry,
    OrderSnapshot,
    ReconContext,
    ReconInput,
    SettlementKind,
    SettlementLine,
    WatermarkAdvanced,
)
from streams.domain.recon.outputs import (
    ControlCommandOut,
    ReconAction,
    ReconAlertKind,
    ReconAuditAction,
    ReconBreakOut,
    ReconCategory,
    ReconOutcome,
    SettlementProof,
)
from streams.domain.recon.state import (
    BookedEntry,
    Check,
    ReconState,
    SettledLine,
    decision_key,
    line_decision,
)

ReconOutput = (
    ReconBreakOut | ControlCommandOut | SettlementProof | ReconOutcome | AlertOut | AuditOut
)

ISSUED_BY: Final = "reconciliation"
PROOF_EVENT_PREFIX: Final = "settlement:"
# Only an order still waiting for its payment can take the proof as that payment.
_AWAITING_PAYMENT: Final = frozenset({OrderStatus.CREATED.value, OrderStatus.PENDING_PAYMENT.value})


class Rule(StrEnum):
    """Names the rule behind each audit record."""

    PAYMENT_MATCH = "recon.payment-matches-credit"
    REFUND_MATCH = "recon.refund-matches-debit"
    LEDGER_VS_LINE = "recon.ledger-vs-settlement"
    ORDER_VS_LINE = "recon.order-vs-settlement"
    MISSING_CREDIT = "recon.missing-credit"
    MISSING_AT_PROVIDER = "recon.missing-at-provider"
    REFUND_STATUS = "recon.refund-status"
    DUPLICATE = "recon.duplicate-settlement"
    CHARGEBACK = "recon.chargeback"


@dataclass(frozen=True, slots=True)
class _Finding:
    category: ReconCategory
    action: ReconAction
    rule: Rule
    identity: tuple[str | None, ...]  # the fact it is about: a transaction, entry or pair
    provider: str
    expected: tuple[int | None, str | None]  # the ledger's (or order's) amount, currency
    actual: tuple[int | None, str | None]  # the provider's
    evidence: dict[str, str]

    def break_id(self, order_id: str) -> str:
        return derived_id("rb", self.category.value, order_id, *self.identity)


class _Effects:
    """Collects one step's outputs, stamped with event time and a correlation id."""

    def __init__(self, state: ReconState, ctx: ReconContext) -> None:
        self.order_id = state.order_id
        self.now = ctx.now_ms
        order_correlation_id = state.order.correlation_id if state.order else None
        self.correlation_id = ctx.correlation_id or order_correlation_id
        self.outputs: list[ReconOutput] = []

    def emit(self, output: ReconOutput) -> None:
        self.outputs.append(output)

    def audit(
        self,
        audit_id: str,
        action: ReconAuditAction,
        rule: Rule,
        inputs: dict[str, str],
        outcome: str,
    ) -> None:
        self.emit(
            AuditOut(
                audit_id=audit_id,
                subject=self.order_id,
                action=action,
                rule=rule.value,
                inputs=inputs,
                outcome=outcome,
                actor=None,
                at=self.now,
                correlation_id=self.correlation_id,
            )
        )

    def new_alert(
        self,
        kind: ReconAlertKind,
        severity: Severity,
        provider: str,
        about: str,
        details: dict[str, str],
    ) -> AlertOut:
        """An alert about one fact: `about` is the id of the break or line it concerns."""
        return AlertOut(
            alert_id=derived_id("al", kind.value, self.order_id, about),
            kind=kind.value,
            severity=severity,
            order_id=self.order_id,
            provider=provider,
            details=details,
            raised_at=self.now,
            correlation_id=self.correlation_id,
        )

    def outcome(self, provider: str, category: ReconCategory | None) -> None:
        self.emit(ReconOutcome(self.order_id, provider, self.now, category))


# --- evidence ------------------------------------------------------------------------


def _line_evidence(line: SettlementLine, prefix: str = "line") -> dict[str, str]:
    return {
        f"{prefix}.record_id": line.record_id,
        f"{prefix}.batch_id": line.batch_id,
        f"{prefix}.provider": line.provider,
        f"{prefix}.kind": line.kind.value,
        f"{prefix}.external_txn_id": line.external_txn_id or "",
        f"{prefix}.refund_id": line.refund_id or "",
        f"{prefix}.merchant_id": line.merchant_id,
        f"{prefix}.amount_minor": str(line.amount_minor),
        f"{prefix}.fee_minor": str(line.fee_minor),
        f"{prefix}.currency": line.currency or "",
        f"{prefix}.settled_at": str(line.settled_at),
    }


def _entry_evidence(entry: LedgerEntry) -> dict[str, str]:
    return {
        "ledger.entry_id": entry.entry_id,
        "ledger.op": entry.op.value,
        "ledger.account_id": entry.account_id,
        "ledger.external_txn_id": entry.external_txn_id or "",
        "ledger.refund_id": entry.refund_id or "",
        "ledger.amount_minor": str(entry.amount_minor),
        "ledger.currency": entry.currency,
        "ledger.created_at": str(entry.created_at),
    }


def _order_evidence(order: OrderSnapshot | None) -> dict[str, str]:
    if order is None:
        return {"order.status": "UNKNOWN"}
    return {
        "order.status": order.status,
        "order.hold_reasons": ",".join(sorted(order.hold_reasons)),
        "order.account_id": order.account_id,
        "order.amount_minor": str(order.amount_minor),
        "order.currency": order.currency,
        "order.provider": order.provider,
        "order.merchant_id": order.merchant_id,
    }


def _chain(
    state: ReconState,
    entry: LedgerEntry | None,
    record_id: str | None,
    proof: PaymentEvent | None = None,
) -> dict[str, str]:
    """The correlation chain; a link this order lacks is an empty string.

    A proof stands in for the payment event and the credit it will cause.
    """
    order_event_id = state.order.created_event_id if state.order else None
    if proof is not None:
        payment_event_id = proof.event_id
        ledger_entry_id = entry_id(proof.order_id, "CREDIT", proof.external_txn_id, None)
    else:
        payment_event_id = entry.caused_by if entry else ""
        ledger_entry_id = entry.entry_id if entry else ""
    return {
        "chain.order_event_id": order_event_id or "",
        "chain.payment_event_id": payment_event_id,
        "chain.entry_id": ledger_entry_id,
        "chain.settlement_record_id": record_id or "",
    }


def _line_side(line: SettlementLine) -> tuple[int | None, str | None]:
    return (line.amount_minor, line.currency)


def _entry_side(entry: LedgerEntry) -> tuple[int | None, str | None]:
    return (entry.amount_minor, entry.currency)


# --- reporting -----------------------------------------------------------------------


def _raise(
    state: ReconState, fx: _Effects, finding: _Finding, consequences: tuple[ReconOutput, ...] = ()
) -> ReconState:
    """Emit a break with its consequences, audit and outcome, unless already reported."""
    break_id = finding.break_id(state.order_id)
    if break_id in state.break_ids:
        return state
    fx.emit(
        ReconBreakOut(
            break_id=break_id,
            category=finding.category,
            order_id=state.order_id,
            provider=finding.provider,
            expected_amount_minor=finding.expected[0],
            actual_amount_minor=finding.actual[0],
            expected_currency=finding.expected[1],
            actual_currency=finding.actual[1],
            action=finding.action,
            evidence=finding.evidence,
            detected_at=fx.now,
            correlation_id=fx.correlation_id,
        )
    )
    for output in consequences:
        fx.emit(output)
    inputs = finding.evidence | {"break_id": break_id}
    action = ReconAuditAction(finding.action.value)
    fx.audit(derived_id("au", "recon", break_id), action, finding.rule, inputs, finding.category)
    fx.outcome(finding.provider, finding.category)
    return evolve(state, break_ids=state.break_ids | {break_id})


def _decide(state: ReconState, key: str) -> ReconState:
    return evolve(state, decided=state.decided | {key})


# --- checks --------------------------------------------------------------------------


def _compare(
    state: ReconState, line: SettlementLine, entry: LedgerEntry, fx: _Effects
) -> ReconState:
    """Both sides of one money movement are here: do they agree?"""
    state = _decide(state, line_decision(Check.LEDGER_VS_LINE, line))
    evidence = _line_evidence(line) | _entry_evidence(entry)
    evidence |= _chain(state, entry, line.record_id)
    if _entry_side(entry) == _line_side(line):
        rule = Rule.PAYMENT_MATCH if line.kind is SettlementKind.PAYMENT else Rule.REFUND_MATCH
        audit_id = derived_id("au", "recon-match", state.order_id, *line.txn_key)
        fx.audit(audit_id, ReconAuditAction.MATCHED, rule, evidence, "MATCHED")
        # A transaction counts once in the mismatch rate: as its break, if it had one.
        if line_decision(Check.LINE_DUE, line) not in state.decided:
            fx.outcome(line.provider, None)
        return state
    category = ReconCategory.AMOUNT_MISMATCH
    if entry.currency != line.currency:
        category = ReconCategory.CURRENCY_MISMATCH
    finding = _Finding(
        category,
        ReconAction.MANUAL_REVIEW,
        Rule.LEDGER_VS_LINE,
        line.txn_key,
        line.provider,
        _entry_side(entry),
        _line_side(line),
        evidence,
    )
    return _raise(state, fx, finding)


def _line_due(state: ReconState, line: SettlementLine, fx: _Effects) -> ReconState:
    """A line's grace is over and no ledger entry met it."""
    state = _decide(state, line_decision(Check.LINE_DUE, line))
    if line.kind is SettlementKind.PAYMENT:
        return _missing_credit(state, line, fx)
    if line.kind is SettlementKind.REFUND:
        evidence = _line_evidence(line) | _order_evidence(state.order)
        evidence |= _chain(state, None, line.record_id) | {"reason": "SETTLED_NOT_DEBITED"}
        finding = _Finding(
            ReconCategory.REFUND_STATUS_MISMATCH,
            ReconAction.MANUAL_REVIEW,
            Rule.REFUND_STATUS,
            line.txn_key,
            line.provider,
            (None, None),
            _line_side(line),
            evidence,
        )
        return _raise(state, fx, finding)
    _chargeback(state, line, fx)
    return state


def _why_not_auto(order: OrderSnapshot, line: SettlementLine, credited: bool) -> str | None:
    """Why the settled payment cannot be credited as the callback's stand-in, if not."""
    if (line.provider, line.merchant_id) != (order.provider, order.merchant_id):
        return "MERCHANT_MISMATCH"
    if line.external_txn_id is None:
        return "NO_EXTERNAL_TXN_ID"
    if credited:
        # Another transaction was credited: this one is a second charge, not a lost one.
        return "CREDITED_ANOTHER_TXN"
    if order.status not in _AWAITING_PAYMENT:
        # Already paid (credited or waiting), ended, or ON_HOLD, which any hold reason
        # (risk block or review, step-up, mismatch, freeze) implies: the order stage would
        # not credit this payment now, so a human decides.
        return f"ORDER_{order.status}"
    return None


def _missing_credit(state: ReconState, line: SettlementLine, fx: _Effects) -> ReconState:
    order = state.order
    evidence = _line_evidence(line) | _order_evidence(order)
    credited = [b.entry for b in state.entries if b.entry.op is EntryOp.CREDIT]
    if credited:
        evidence["ledger.credited_txn_ids"] = ",".join(
            sorted(entry.external_txn_id or "" for entry in credited)
        )
    if order is not None and (order.amount_minor, order.currency) != _line_side(line):
        # The provider settled something other than what was ordered (seed 12.3).
        category = ReconCategory.AMOUNT_MISMATCH
        if order.currency != line.currency:
            category = ReconCategory.CURRENCY_MISMATCH
        finding = _Finding(
            category,
            ReconAction.MANUAL_REVIEW,
            Rule.ORDER_VS_LINE,
            line.txn_key,
            line.provider,
            (order.amount_minor, order.currency),
            _line_side(line),
            evidence | _chain(state, None, line.record_id),
        )
        return _raise(state, fx, finding)
    reason = "ORDER_UNKNOWN" if order is None else _why_not_auto(order, line, bool(credited))
    if order is None or reason is not None:
        finding = _Finding(
            ReconCategory.MISSING_CREDIT,
            ReconAction.MANUAL_REVIEW,
            Rule.MISSING_CREDIT,
            line.txn_key,
            line.provider,
            (None, None),
            _line_side(line),
            evidence | _chain(state, None, line.record_id) | {"reason": reason or ""},
        )
        return _raise(state, fx, finding)
    proof = _proof_of(order, line)
    evidence |= _chain(state, None, line.record_id, proof) | {"proof.event_id": proof.event_id}
    finding = _Finding(
        ReconCategory.MISSING_CREDIT,
        ReconAction.AUTO_CORRECTED,
        Rule.MISSING_CREDIT,
        line.txn_key,
        line.provider,
        (None, None),
        _line_side(line),
        evidence,
    )
    return _raise(state, fx, finding, (SettlementProof(proof, fx.correlation_id),))


def _proof_of(order: OrderSnapshot, line: SettlementLine) -> PaymentEvent:
    """The payment event the missing callback would have been.

    The settlement file has no app id; the order's own stands in, as the provider's
    settlement is the stronger proof of who was paid.
    """
    if line.external_txn_id is None or line.currency is None:
        raise AssertionError("_why_not_auto refuses lines without a txn id or currency")
    return PaymentEvent(
        provider=line.provider,
        event_id=PROOF_EVENT_PREFIX + line.record_id,
        external_txn_id=line.external_txn_id,
        order_id=order.order_id,
        kind=PaymentKind.PAYMENT_SUCCEEDED,
        amount_minor=line.amount_minor,
        currency=line.currency,
        merchant_id=line.merchant_id,
        app_id=order.app_id,
        occurred_at=line.settled_at,
    )


def _chargeback(state: ReconState, line: SettlementLine, fx: _Effects) -> None:
    """The customer's bank took the money back. Nothing on our ledger is wrong yet, but
    money may now be credited that the merchant no longer holds: a human must look."""
    credit = next(
        (
            b.entry
            for b in state.entries
            if b.entry.op is EntryOp.CREDIT and b.entry.external_txn_id == line.external_txn_id
        ),
        None,
    )
    details = _line_evidence(line) | _chain(state, credit, line.record_id)
    details["credited"] = "true" if credit else "false"
    kind, about = ReconAlertKind.CHARGEBACK, line.record_id
    fx.emit(fx.new_alert(kind, Severity.WARN, line.provider, about, details))
    audit_id = derived_id("au", "recon-chargeback", state.order_id, line.record_id)
    outcome = "CREDITED_CHARGED_BACK" if credit else "NOT_CREDITED"
    fx.audit(audit_id, ReconAuditAction.CHARGEBACK, Rule.CHARGEBACK, details, outcome)


def _duplicate(state: ReconState, extra: SettlementLine, fx: _Effects) -> ReconState:
    state = _decide(state, decision_key(Check.DUPLICATE, extra.record_id))
    first = state.line_for(extra.txn_key)
    if first is None:
        raise AssertionError("a duplicate is only kept once its transaction has a line")
    # The pair, in record id order, names the fact whichever line arrived first.
    pair = sorted((first.line, extra), key=lambda line: line.record_id)
    evidence = _line_evidence(pair[0], "line.0") | _line_evidence(pair[1], "line.1")
    record_ids = ",".join(line.record_id for line in pair)
    evidence |= _chain(state, state.entry_for(first.line), record_ids)
    finding = _Finding(
        ReconCategory.DUPLICATE_SETTLEMENT,
        ReconAction.MANUAL_REVIEW,
        Rule.DUPLICATE,
        (*extra.txn_key, *(line.record_id for line in pair)),
        extra.provider,
        (None, None),
        _line_side(extra),
        evidence,
    )
    return _raise(state, fx, finding)


def _unsettled(
    state: ReconState, booked: BookedEntry, covers_until: int, fx: _Effects
) -> ReconState:
    """The provider's closed batches cover this ledger entry and hold no line for it."""
    entry = booked.entry
    state = _decide(state, decision_key(Check.UNSETTLED, entry.entry_id))
    evidence = _entry_evidence(entry) | _order_evidence(state.order) | _chain(state, entry, None)
    evidence |= {"covers_until": str(covers_until), "covered_from": str(booked.covered_from)}
    if entry.op is EntryOp.DEBIT:
        finding = _Finding(
            ReconCategory.REFUND_STATUS_MISMATCH,
            ReconAction.MANUAL_REVIEW,
            Rule.REFUND_STATUS,
            (entry.entry_id,),
            entry.provider,
            _entry_side(entry),
            (None, None),
            evidence | {"reason": "DEBITED_NOT_SETTLED"},
        )
        return _raise(state, fx, finding)
    finding = _Finding(
        ReconCategory.MISSING_AT_PROVIDER,
        ReconAction.FROZEN,
        Rule.MISSING_AT_PROVIDER,
        (entry.entry_id,),
        entry.provider,
        _entry_side(entry),
        (None, None),
        evidence,
    )
    break_id = finding.break_id(state.order_id)
    # Money credited that the provider never received: stop further credits to the
    # account until an operator has looked, and wake someone up.
    freeze = ControlCommandOut(
        command_id=derived_id("cmd", break_id),
        action=FreezeAction.FREEZE_CREDITS,
        scope=f"account:{entry.account_id}",
        reason=f"reconciliation break {break_id}: credit {entry.entry_id} has no provider line",
        issued_by=ISSUED_BY,
        issued_at=fx.now,
        correlation_id=fx.correlation_id,
    )
    details = evidence | {"break_id": break_id, "command_id": freeze.command_id}
    kind = ReconAlertKind.MISSING_AT_PROVIDER
    page = fx.new_alert(kind, Severity.PAGE, entry.provider, break_id, details)
    return _raise(state, fx, finding, (freeze, page))


def _reconcile(state: ReconState, fx: _Effects) -> ReconState:
    """Answer every question the state can answer now, in a fixed order."""
    undecided = state.undecided_lines()
    for settled in state.lines:
        line, due = settled.line, fx.now >= settled.due_at
        entry = state.entry_for(line)
        compared = line_decision(Check.LEDGER_VS_LINE, line) in state.decided
        # Compared once the order is known too, so the audit names the whole chain
        # whatever order the inputs came in; at the latest when the grace is over.
        ready = state.order is not None or due or settled not in undecided
        if entry is not None and not compared and ready:
            state = _compare(state, line, entry, fx)
        elif entry is None and due and settled in undecided:
            state = _line_due(state, line, fx)
    for extra in state.undecided_duplicates():
        if fx.now >= extra.due_at:
            state = _duplicate(state, extra.line, fx)
    covers_until = state.covers_until
    if covers_until is not None:
        for booked in state.awaiting_line():
            if covers_until >= booked.covered_from:
                state = _unsettled(state, booked, covers_until, fx)
    return state


# --- recording inputs ----------------------------------------------------------------


def _record_line(state: ReconState, line: SettlementLine, ctx: ReconContext) -> ReconState:
    if line.record_id in state.seen_record_ids:
        return state  # the same record delivered again: already counted
    due_at = max(line.settled_at, ctx.now_ms) + ctx.config.missing_credit_grace_ms
    settled = SettledLine(line, due_at)
    if state.line_for(line.txn_key) is not None:
        return evolve(state, duplicates=(*state.duplicates, settled))
    return evolve(state, lines=(*state.lines, settled))


def _record_entry(state: ReconState, entry: LedgerEntry, ctx: ReconContext) -> ReconState:
    if entry.op is EntryOp.REVERSAL:
        # A reversal takes a credit back: the ledger nets to nothing for that payment, so
        # a credit no provider line covers is no longer MISSING_AT_PROVIDER. A line that
        # does come still meets the credit (the provider did move that money): MATCHED.
        reversed_credit = entry_id(entry.order_id, "CREDIT", entry.external_txn_id, None)
        return evolve(
            state, decided=state.decided | {decision_key(Check.REVERSED, reversed_credit)}
        )
    if any(b.entry.entry_id == entry.entry_id for b in state.entries):
        return state
    covered_from = entry.created_at + ctx.config.missing_line_grace_ms
    return evolve(state, entries=(*state.entries, BookedEntry(entry, covered_from)))


def _record_order(state: ReconState, order: OrderSnapshot) -> ReconState:
    # Holds can change without a status change, so an equal version is news too.
    if state.order is not None and order.version < state.order.version:
        return state  # a snapshot reordered behind a newer one
    return evolve(state, order=order)


def _record_watermark(state: ReconState, mark: WatermarkAdvanced) -> ReconState:
    key = (mark.provider, mark.merchant_id)
    others = [w for w in state.watermarks if (w.provider, w.merchant_id) != key]
    current = next((w for w in state.watermarks if (w.provider, w.merchant_id) == key), None)
    if current is not None and current.covers_until >= mark.covers_until:
        return state  # watermarks never go back
    marks = sorted((*others, mark), key=lambda w: (w.provider, w.merchant_id))
    return evolve(state, watermarks=tuple(marks))


def _record(state: ReconState, event: ReconInput | Tick, ctx: ReconContext) -> ReconState:
    if isinstance(event, SettlementLine):
        return _record_line(state, event, ctx)
    if isinstance(event, LedgerEntry):
        return _record_entry(state, event, ctx)
    if isinstance(event, OrderSnapshot):
        return _record_order(state, event)
    if isinstance(event, WatermarkAdvanced):
        return _record_watermark(state, event)
    return state


def _order_id_of(event: ReconInput | Tick) -> str | None:
    if isinstance(event, SettlementLine | LedgerEntry | OrderSnapshot):
        return event.order_id
    return None


def step(
    state: ReconState | None, event: ReconInput | Tick, ctx: ReconContext
) -> tuple[ReconState, list[ReconOutput]]:
    """Apply one input to one order's reconciliation state; the only entry point.

    Raises ValueError only for caller mistakes: a Tick or watermark without a state, an
    input routed to another order's state, a Tick whose time is not the context's.
    """
    order_id = _order_id_of(event)
    if state is None:
        if order_id is None:
            raise ValueError(f"{type(event).__name__} needs an existing reconciliation state")
        state = ReconState(order_id=order_id)
    elif order_id is not None and order_id != state.order_id:
        raise ValueError(f"{order_id} routed to the reconciliation state of {state.order_id}")
    if isinstance(event, Tick) and event.now_ms != ctx.now_ms:
        raise ValueError("a Tick's now_ms must be the context's now_ms")
    state = _record(state, event, ctx)
    fx = _Effects(state, ctx)
    return _reconcile(state, fx), fx.outputs
