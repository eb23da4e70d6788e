"""Checked arithmetic for sums that land in Avro longs and state.

Python ints never overflow, so a sum past 2**63 - 1 would only fail when encoded, inside a
transaction, on every retry. Checking at the sum turns it into an error of the record that
caused it: the record is dead-lettered and the partition goes on.
"""

from __future__ import annotations

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# The largest amount in minor units any single order, payment or line may carry:
# 10^12 minor units (ten billion in a two-decimal currency), so that any realistic number
# of them summed stays far inside a signed 64-bit integer. TOPUP_MAX_AMOUNT_MINOR can only
# lower it, to what the business actually tops up.
MAX_AMOUNT_MINOR = 10**12


class AmountOutOfRange(ValueError):
    """An amount above the configured TOPUP_MAX_AMOUNT_MINOR, or 0 where money must move."""


def check_moves_money(what: str, name: str, value: int) -> int:
    """An edge check for inputs that say money moved: 0 is no movement, only a record that
    can match nothing (no order is of 0). Raises AmountOutOfRange."""
    if value == 0:
        raise AmountOutOfRange(f"{name} is 0: {what} must move money")
    return value


def check_amount_limit(name: str, value: int, most: int) -> int:
    """The edge's bound (the domain types already refuse negatives and the hard ceiling)."""
    if value > most:
        raise AmountOutOfRange(f"{name} {value} is above {most} (TOPUP_MAX_AMOUNT_MINOR)")
    return value


class Int64Overflow(ArithmeticError):
    """A sum left the signed 64-bit range."""


def checked_add(*values: int) -> int:
    total = sum(values)
    if not INT64_MIN <= total <= INT64_MAX:
        raise Int64Overflow(f"sum {total} is outside the signed 64-bit range")
    return total
