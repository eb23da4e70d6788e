"""The ledger's arithmetic: what one entry does to an account's balance.

A balance is a cache of the ledger (topup.credits), per currency in minor units; a replay
of the ledger rebuilds it through this one function, as the balances stage, the
operators' rebuild and trace all do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.domain.common.int64 import checked_add

# Credits add; debits and reversals of a credit remove (amount and bonus alike).
SIGN: Mapping[str, int] = {"CREDIT": 1, "DEBIT": -1, "REVERSAL": -1}

Balance = dict[str, int]


def apply_entry(balance: Mapping[str, int] | None, entry: Mapping[str, Any]) -> Balance:
    """The balance after `entry` (a LedgerEntry record). An overflow of 64 bits raises
    (int64.Int64Overflow): the caller keeps the balance as it was."""
    updated = dict(balance or {})
    delta = SIGN[entry["op"]] * checked_add(entry["amount_minor"], entry["bonus_minor"])
    updated[entry["currency"]] = checked_add(updated.get(entry["currency"], 0), delta)
    return updated
