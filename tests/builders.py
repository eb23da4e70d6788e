"""Builders of the records tests feed the system: orders, payments, settlement lines and
batches, as the contract's producers would write them. One copy, shared by the unit,
integration and chaos tests, instead of copies and imports between test modules."""

from __future__ import annotations

from typing import Any

from streams.domain.payments import PaymentEvent, PaymentKind

NOW_MS = 1_795_000_000_000
MERCHANT = "merchant-hmac"


def order_event(order_id: str, type_: str = "CREATED", at: int = NOW_MS, **fields: Any) -> dict:
    record = {
        "event_id": f"{order_id}-{type_.lower()}-{at}",
        "type": type_,
        "order_id": order_id,
        "occurred_at": at,
        "account_id": f"acct-{order_id}",
        "user_id": f"user-{order_id}",
        "amount_minor": 1000 if type_ == "CREATED" else 0,
        "currency": "USD",
        "provider": "hmac",
        "merchant_id": MERCHANT,
    }
    record.update(fields)
    return record


def settlement_line(
    record_id: str, batch_id: str, order_id: str | None, amount: int, at: int, **fields: Any
) -> dict:
    record = {
        "record_id": record_id, "type": "LINE", "batch_id": batch_id, "provider": "hmac",
        "merchant_id": MERCHANT, "kind": "PAYMENT", "order_id": order_id,
        "external_txn_id": f"txn-{order_id}", "refund_id": None, "amount_minor": amount,
        "fee_minor": 10, "currency": "USD", "settled_at": at, "line_count": None,
        "total_amount_minor": None, "covers_until": None,
    }
    record.update(fields)
    return record


def batch_closed(
    batch_id: str, lines: int, total: int, at: int, covers_until: int | None
) -> dict:
    return {
        "record_id": f"{batch_id}-closed", "type": "BATCH_CLOSED", "batch_id": batch_id,
        "provider": "hmac", "merchant_id": MERCHANT, "kind": None, "order_id": None,
        "external_txn_id": None, "refund_id": None, "amount_minor": 0, "fee_minor": 0,
        "currency": None, "settled_at": at, "line_count": lines, "total_amount_minor": total,
        "covers_until": covers_until,
    }


def payment_event(
    order_id: str,
    kind: PaymentKind = PaymentKind.PAYMENT_SUCCEEDED,
    amount: int = 1000,
    at: int = NOW_MS,
    **fields: Any,
) -> PaymentEvent:
    values: dict[str, Any] = {
        "provider": "hmac",
        "event_id": f"evt-{order_id}-{kind.value.lower()}",
        "external_txn_id": f"txn-{order_id}",
        "order_id": order_id,
        "kind": kind,
        "amount_minor": amount,
        "currency": "USD",
        "merchant_id": MERCHANT,
        "app_id": None,
        "occurred_at": at,
    }
    values.update(fields)
    return PaymentEvent(**values)


def payment(
    order_id: str, event_id: str, provider: str = "hmac", amount: int = 1000
) -> PaymentEvent:
    return PaymentEvent(
        provider=provider,
        event_id=event_id,
        external_txn_id=f"txn-{event_id}",
        order_id=order_id,
        kind=PaymentKind.PAYMENT_SUCCEEDED,
        amount_minor=amount,
        currency="CNY" if provider == "wechatpay" else "USD",
        merchant_id=f"merchant-{provider}",
        app_id="wx-app-1" if provider == "wechatpay" else None,
        occurred_at=NOW_MS,
    )
