"""The provider-neutral payment event every webhook adapter normalises to.

Pure data: built only from a verified callback, carried on an internal topic as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.domain.common.currencies import check_currency
from streams.domain.common.evolve import init_fields
from streams.domain.common.int64 import MAX_AMOUNT_MINOR, check_moves_money

# Avro `long`: anything larger could not be written to the output topics.
_LONG_MAX = 2**63 - 1


class PaymentKind(StrEnum):
    PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    REFUND_SUCCEEDED = "REFUND_SUCCEEDED"
    REFUND_FAILED = "REFUND_FAILED"


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    provider: str
    event_id: str
    external_txn_id: str
    order_id: str
    kind: PaymentKind
    amount_minor: int
    currency: str
    merchant_id: str
    app_id: str | None
    occurred_at: int
    refund_id: str | None = None

    def __post_init__(self) -> None:
        # Invariants hold for every instance, so downstream code never re-validates.
        for name in ("provider", "event_id", "external_txn_id", "order_id", "merchant_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        for name in ("app_id", "refund_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string or None")
        if not isinstance(self.kind, PaymentKind):
            raise ValueError("kind must be a PaymentKind")
        for name, most in (("amount_minor", MAX_AMOUNT_MINOR), ("occurred_at", _LONG_MAX)):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= most:
                raise ValueError(f"{name} must be an integer in [0, {most}]")
        check_currency(self.currency)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; `kind` as its plain string value."""
        out = {name: getattr(self, name) for name in init_fields(type(self))}
        out["kind"] = self.kind.value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PaymentEvent:
        """Inverse of `to_dict`. Unknown keys are ignored so the topic can gain fields.

        Raises ValueError on a missing field or an invalid value.
        """
        try:
            values = {name: d[name] for name in init_fields(cls) if name != "refund_id"}
        except KeyError as exc:
            raise ValueError(f"payment event is missing field {exc.args[0]!r}") from None
        values["refund_id"] = d.get("refund_id")
        try:
            values["kind"] = PaymentKind(values["kind"])
        except ValueError:
            raise ValueError("kind is not a known PaymentKind") from None
        return cls(**values)


# A failure's amount only describes the attempt (Stripe's failed intent has received 0,
# and the adapter falls back to what was asked); a success of 0 moved nothing.
MOVES_MONEY = frozenset({PaymentKind.PAYMENT_SUCCEEDED, PaymentKind.REFUND_SUCCEEDED})


def check_payment_amount(payment: PaymentEvent) -> None:
    """The edge's check of a verified callback (not of `__post_init__`, so records already
    on internal topics still load). Raises AmountOutOfRange."""
    if payment.kind in MOVES_MONEY:
        check_moves_money(f"a {payment.kind.value}", "amount_minor", payment.amount_minor)
