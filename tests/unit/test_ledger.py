"""The ledger's arithmetic: credits add, debits and reversals remove, per currency."""

from __future__ import annotations

from typing import Any

import pytest

from streams.domain.common.int64 import Int64Overflow
from streams.domain.ledger import apply_entry


def entry(op: str, amount: int, bonus: int = 0, currency: str = "USD") -> dict[str, Any]:
    return {"op": op, "amount_minor": amount, "bonus_minor": bonus, "currency": currency}


def test_a_credit_adds_amount_and_bonus_and_its_reversal_takes_both_back() -> None:
    balance = apply_entry(None, entry("CREDIT", 1_000, 50))
    assert balance == {"USD": 1_050}
    balance = apply_entry(balance, entry("CREDIT", 7, currency="EUR"))
    assert balance == {"USD": 1_050, "EUR": 7}
    assert apply_entry(balance, entry("REVERSAL", 1_000, 50)) == {"USD": 0, "EUR": 7}
    assert apply_entry(balance, entry("DEBIT", 50)) == {"USD": 1_000, "EUR": 7}


def test_an_overflow_raises_and_leaves_the_balance_as_it_was() -> None:
    balance = {"USD": 2**63 - 1}
    with pytest.raises(Int64Overflow):
        apply_entry(balance, entry("CREDIT", 1))
    assert balance == {"USD": 2**63 - 1}
