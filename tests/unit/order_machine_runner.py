"""One order's inputs through the order machine: builders for its inputs, a runner that
steps them one second apart, filters over its outputs, and the moves the transition table
allows. Shared by the order machine's tests, its properties and the reversal tests."""

from __future__ import annotations

from typing import Any

from streams.domain.common.ids import entry_id
from streams.domain.common.outputs import AlertOut, AuditOut
from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.domain.common.time import Tick
from streams.domain.orders.inputs import (
    Context,
    OrderEvent,
    OrderEventType,
    OrderInput,
    RiskDecision,
    RiskVerdict,
)
from streams.domain.orders.machine import TRANSITIONS, step
from streams.domain.orders.outputs import (
    AuditAction,
    LedgerEntryOut,
    Output,
    ReviewCase,
    StatusChange,
)
from streams.domain.orders.state import OrderState, OrderStatus

T0 = 1_700_000_000_000
ORDER_ID = "ord-1"
AMOUNT = 10_000
BONUS = 500
HOLD_MS = 15 * 60 * 1000

# --- builders ------------------------------------------------------------------------


def order_event(type_: str, event_id: str | None = None, **fields: Any) -> OrderEvent:
    values: dict[str, Any] = {
        "event_id": event_id or f"{type_.lower()}-1",
        "type": OrderEventType(type_),
        "order_id": ORDER_ID,
        "occurred_at": T0,
        "account_id": "acc-1",
        "user_id": "user-1",
        "amount_minor": 0,
        "currency": "USD",
        "provider": "hmac",
        "merchant_id": "mch-1",
    }
    if type_ == "CREATED":
        values |= {"amount_minor": AMOUNT, "promo_id": "promo-1", "promo_bonus_minor": BONUS}
    return OrderEvent(**(values | fields))


def created(**fields: Any) -> OrderEvent:
    return order_event("CREATED", **fields)


def paid(event_id: str = "pay-1", txn: str = "txn-1", **fields: Any) -> PaymentEvent:
    values: dict[str, Any] = {
        "provider": "hmac",
        "event_id": event_id,
        "external_txn_id": txn,
        "order_id": ORDER_ID,
        "kind": PaymentKind.PAYMENT_SUCCEEDED,
        "amount_minor": AMOUNT,
        "currency": "USD",
        "merchant_id": "mch-1",
        "app_id": None,
        "occurred_at": T0,
    }
    return PaymentEvent(**(values | fields))


def payment_failed(event_id: str = "fail-1", txn: str = "txn-0") -> PaymentEvent:
    return paid(event_id, txn, kind=PaymentKind.PAYMENT_FAILED)


def refund_request(refund_id: str = "ref-1", amount: int = AMOUNT, **fields: Any) -> OrderEvent:
    event_id = fields.pop("event_id", f"req-{refund_id}")
    return order_event(
        "REFUND_REQUESTED", event_id, refund_id=refund_id, amount_minor=amount, **fields
    )


def refund_result(
    refund_id: str = "ref-1", amount: int = AMOUNT, ok: bool = True, **fields: Any
) -> PaymentEvent:
    kind = PaymentKind.REFUND_SUCCEEDED if ok else PaymentKind.REFUND_FAILED
    event_id = fields.pop("event_id", f"{kind.value.lower()}-{refund_id}")
    return paid(event_id, kind=kind, refund_id=refund_id, amount_minor=amount, **fields)


CREDIT_ID = entry_id(ORDER_ID, "CREDIT", "txn-1", None)


def reversal(event_id: str = "rev-1", entry: str = CREDIT_ID, **fields: Any) -> OrderEvent:
    values = {"entry_id": entry, "actor": "ann@ops", "reason": "credited in error"}
    return order_event("REVERSAL_REQUESTED", event_id, **(values | fields))


def verdict(decision: str, decided_at: int = T0) -> RiskVerdict:
    return RiskVerdict(ORDER_ID, RiskDecision(decision), 70, ("rule-a",), decided_at, "rules-1")


def ctx(now: int = T0, **flags: Any) -> Context:
    values = {"credits_frozen": False, "refunds_frozen": False, "correlation_id": "corr-1"}
    return Context(now_ms=now, **(values | flags))


def time_of(output: Output) -> int:
    if isinstance(output, StatusChange):
        return output.updated_at
    if isinstance(output, LedgerEntryOut):
        return output.created_at
    if isinstance(output, AlertOut):
        return output.raised_at
    if isinstance(output, AuditOut):
        return output.at
    return output.opened_at


class Run:
    """Feeds one order's inputs through `step`, one second of event time apart."""

    def __init__(self, **flags: Any) -> None:
        self.flags = flags
        self.state: OrderState | None = None
        self.now = T0
        self.log: list[Output] = []

    def __call__(self, event: OrderInput | Tick, at: int | None = None, **flags: Any) -> list:
        self.now = self.now + 1000 if at is None else at
        self.state, outputs = step(self.state, event, ctx(self.now, **(self.flags | flags)))
        # Every output carries the input's event time, never a clock reading.
        assert all(time_of(output) == self.now for output in outputs)
        self.log.extend(outputs)
        return outputs

    def tick(self, at: int) -> list:
        return self(Tick(at), at=at)

    @property
    def status(self) -> OrderStatus | None:
        return None if self.state is None else self.state.status


def ledger(outputs: list[Output]) -> list[LedgerEntryOut]:
    return [o for o in outputs if isinstance(o, LedgerEntryOut)]


def alerts(outputs: list[Output]) -> list[AlertOut]:
    return [o for o in outputs if isinstance(o, AlertOut)]


def alert_kinds(outputs: list[Output]) -> list[str]:
    return [o.kind for o in alerts(outputs)]


def audits(outputs: list[Output]) -> list[AuditOut]:
    return [o for o in outputs if isinstance(o, AuditOut)]


def audit_actions(outputs: list[Output]) -> list[AuditAction]:
    return [o.action for o in audits(outputs)]


def cases(outputs: list[Output]) -> list[ReviewCase]:
    return [o for o in outputs if isinstance(o, ReviewCase)]


def moves(outputs: list[Output]) -> list[tuple[str | None, str, int]]:
    return [
        (o.previous_status, o.status, o.version) for o in outputs if isinstance(o, StatusChange)
    ]


def run_of(*events: OrderInput, **flags: Any) -> Run:
    run = Run(**flags)
    for event in events:
        run(event)
    return run


def credited_run(**flags: Any) -> Run:
    return run_of(created(), order_event("PAYMENT_INITIATED"), paid(), **flags)


ALLOWED_MOVES = {
    (status, target)
    for (status, _), transition in TRANSITIONS.items()
    for target in transition.leads_to
    if target != status
}
