"""Does a provider's event agree with the order it claims to belong to?

Nothing is credited or debited until these checks pass or a reviewer overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.domain.common.payments import PaymentEvent
from streams.domain.orders.outputs import AlertKind
from streams.domain.orders.state import OrderFacts, Payment, Refund


@dataclass(frozen=True, slots=True)
class Mismatch:
    field: str
    alert_kind: AlertKind
    expected: str
    actual: str


def _compare(checks: list[tuple[str, AlertKind, object, object]]) -> list[Mismatch]:
    return [
        Mismatch(name, kind, str(expected), str(actual))
        for name, kind, expected, actual in checks
        if expected != actual
    ]


def payment_mismatches(order_id: str, facts: OrderFacts, event: PaymentEvent) -> list[Mismatch]:
    """Every way a payment success differs from its order, in a fixed order."""
    checks: list[tuple[str, AlertKind, object, object]] = [
        ("order_id", AlertKind.ORDER_MISMATCH, order_id, event.order_id),
        ("amount_minor", AlertKind.AMOUNT_MISMATCH, facts.amount_minor, event.amount_minor),
        ("currency", AlertKind.CURRENCY_MISMATCH, facts.currency, event.currency),
        # Provider, merchant and app id together name who received the money, so they
        # share one alert kind; `details.field` tells them apart.
        ("provider", AlertKind.MERCHANT_MISMATCH, facts.provider, event.provider),
        ("merchant_id", AlertKind.MERCHANT_MISMATCH, facts.merchant_id, event.merchant_id),
    ]
    if facts.app_id is not None:
        checks.append(("app_id", AlertKind.MERCHANT_MISMATCH, facts.app_id, event.app_id))
    return _compare(checks)


def refund_mismatches(refund: Refund, payment: Payment, event: PaymentEvent) -> list[Mismatch]:
    """Every way a refund success differs from the refund that was requested."""
    return _compare(
        [
            ("amount_minor", AlertKind.AMOUNT_MISMATCH, refund.amount_minor, event.amount_minor),
            ("currency", AlertKind.CURRENCY_MISMATCH, payment.currency, event.currency),
        ]
    )
