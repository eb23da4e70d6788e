"""Sums that would leave the signed 64-bit range raise at the sum, and amounts are bounded
at the edge, so no value fails later while being encoded inside a transaction."""

from __future__ import annotations

import pytest

from streams.domain.common.int64 import (
    INT64_MAX,
    MAX_AMOUNT_MINOR,
    AmountOutOfRange,
    Int64Overflow,
    checked_add,
)
from streams.domain.common.payments import PaymentEvent, PaymentKind, check_payment_amount
from streams.domain.orders.inputs import OrderEvent
from streams.domain.recon.batches import BatchContext, step
from streams.domain.recon.inputs import check_line_amount, parse_line, parse_settlement
from streams.stages.balances import apply_entry
from tests.builders import BATCH_T0 as T0
from tests.builders import batch_line as line


def entry(amount: int, bonus: int = 0, op: str = "CREDIT") -> dict:
    return {"op": op, "amount_minor": amount, "bonus_minor": bonus, "currency": "USD"}


def test_checked_add_refuses_to_leave_64_bits() -> None:
    assert checked_add(INT64_MAX - 1, 1) == INT64_MAX
    with pytest.raises(Int64Overflow):
        checked_add(INT64_MAX, 1)
    with pytest.raises(Int64Overflow):
        checked_add(-INT64_MAX - 1, -1)


def test_a_balance_that_would_overflow_raises_and_keeps_its_value() -> None:
    balance = apply_entry(None, entry(INT64_MAX))
    assert balance == {"USD": INT64_MAX}
    with pytest.raises(Int64Overflow):
        apply_entry(balance, entry(1))
    with pytest.raises(Int64Overflow):
        apply_entry(None, entry(INT64_MAX, INT64_MAX))
    assert balance == {"USD": INT64_MAX}


def test_batch_totals_that_would_overflow_raise() -> None:
    state, _ = step(None, line(1, amount=INT64_MAX - 5), BatchContext(now_ms=T0))
    with pytest.raises(Int64Overflow):
        step(state, line(2, amount=INT64_MAX), BatchContext(now_ms=T0))


@pytest.mark.parametrize("amount", [-1, MAX_AMOUNT_MINOR + 1, INT64_MAX])
def test_settlement_amounts_outside_the_bound_are_refused(amount: int) -> None:
    record = {
        "record_id": "r1", "type": "LINE", "batch_id": "b1", "provider": "hmac",
        "merchant_id": "m", "kind": "PAYMENT", "order_id": "o1", "external_txn_id": "t",
        "refund_id": None, "amount_minor": amount, "fee_minor": 0, "currency": "USD",
        "settled_at": T0, "line_count": None, "total_amount_minor": None,
        "covers_until": None,
    }
    with pytest.raises(ValueError, match="amount_minor must be in"):
        parse_settlement(record)


def test_order_amounts_and_bonuses_over_the_bound_are_refused() -> None:
    base = {"event_id": "e", "type": "CREATED", "order_id": "o", "occurred_at": T0,
            "account_id": "a", "user_id": "u", "amount_minor": MAX_AMOUNT_MINOR,
            "currency": "USD", "provider": "hmac", "merchant_id": "m"}
    assert OrderEvent.from_record(base).amount_minor == MAX_AMOUNT_MINOR
    for name in ("amount_minor", "promo_bonus_minor"):
        with pytest.raises(ValueError, match=name):
            OrderEvent.from_record({**base, name: INT64_MAX})


def test_orders_name_a_known_provider() -> None:
    base = {"event_id": "e", "type": "CREATED", "order_id": "o", "occurred_at": T0,
            "account_id": "a", "user_id": "u", "amount_minor": 100,
            "currency": "USD", "provider": "hmac", "merchant_id": "m"}
    for provider in ("paypal", "HMAC", "hmac "):
        with pytest.raises(ValueError, match="provider"):
            OrderEvent.from_record({**base, "provider": provider})


def test_zero_is_refused_only_where_money_must_move() -> None:
    def payment(kind: PaymentKind, amount: int) -> PaymentEvent:
        return PaymentEvent(provider="hmac", event_id="e", external_txn_id="t",
                            order_id="o", kind=kind, amount_minor=amount, currency="USD",
                            merchant_id="m", app_id=None, occurred_at=T0)

    for kind in (PaymentKind.PAYMENT_SUCCEEDED, PaymentKind.REFUND_SUCCEEDED):
        check_payment_amount(payment(kind, 1))
        with pytest.raises(AmountOutOfRange, match=f"0: a {kind.value} must move money"):
            check_payment_amount(payment(kind, 0))
    # A failure's amount only describes the attempt.
    for kind in (PaymentKind.PAYMENT_FAILED, PaymentKind.REFUND_FAILED):
        check_payment_amount(payment(kind, 0))
    line = {"record_id": "r", "type": "LINE", "batch_id": "b", "provider": "hmac",
            "merchant_id": "m", "order_id": "o", "amount_minor": 0, "fee_minor": 0,
            "currency": "USD", "settled_at": T0}
    for kind in ("PAYMENT", "REFUND", "CHARGEBACK"):
        # The parser still loads it (lines kept in state); the edge refuses it.
        zero = parse_line({**line, "kind": kind})
        with pytest.raises(AmountOutOfRange, match=f"0: a {kind} line must move money"):
            check_line_amount(zero)
        check_line_amount(parse_line({**line, "kind": kind, "amount_minor": 1}))
