"""Builders of the records tests feed the system: orders, payments, settlement lines and
batches, as the contract's producers would write them. One copy, shared by the unit,
integration and chaos tests, instead of copies and imports between test modules."""

from __future__ import annotations

from typing import Any

from streams import topics
from streams.domain.common.ids import entry_id
from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.domain.orders.outputs import LedgerEntryOut, LedgerOp, LedgerReason
from streams.domain.recon.inputs import (
    BatchClosed,
    LedgerEntry,
    OrderSnapshot,
    SettlementKind,
    SettlementLine,
    WatermarkAdvanced,
    parse_settlement,
)
from streams.runtime.topic_spec import TopicDirectory

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


# One provider settlement batch (wechatpay), for the batches stage's control totals.
BATCH_T0 = 1_700_000_000_000
BATCH = "wx-20240101"
# The close settled and arrived at T0 + 1 min; its totals are judged a grace later.
BATCH_DECIDE_AT = BATCH_T0 + 60_000 + 30 * 60_000


def batch_line(number: int, amount: int = 100, record_id: str | None = None) -> SettlementLine:
    return SettlementLine(
        record_id=record_id or f"{BATCH}:{number}",
        batch_id=BATCH,
        provider="wechatpay",
        merchant_id="mch-1",
        kind=SettlementKind.PAYMENT,
        order_id=f"ord-{number}",
        external_txn_id=f"txn-{number}",
        refund_id=None,
        amount_minor=amount,
        fee_minor=1,
        currency="CNY",
        settled_at=BATCH_T0,
    )


def batch_close(line_count: int | None = 3, total: int | None = 300) -> BatchClosed:
    return BatchClosed(
        record_id=f"{BATCH}:close",
        batch_id=BATCH,
        provider="wechatpay",
        merchant_id="mch-1",
        settled_at=BATCH_T0 + 60_000,
        line_count=line_count,
        total_amount_minor=total,
        covers_until=BATCH_T0,
    )


# One order's reconciliation (hmac): its snapshot, ledger entries and settlement lines.
RECON_T0 = 1_700_000_000_000
RECON_MINUTE = 60_000
RECON_GRACE = 30 * RECON_MINUTE
RECON_ORDER_ID = "ord-1"
RECON_ACCOUNT = "acc-1"
RECON_AMOUNT = 10_000
RECON_PROVIDER = "hmac"
RECON_MERCHANT = "mch-1"


def recon_snapshot(status: str = "CREDITED", version: int = 3, **fields: Any) -> OrderSnapshot:
    values: dict[str, Any] = {
        "order_id": RECON_ORDER_ID,
        "version": version,
        "created_event_id": "created-1",
        "account_id": RECON_ACCOUNT,
        "amount_minor": RECON_AMOUNT,
        "currency": "USD",
        "provider": RECON_PROVIDER,
        "merchant_id": RECON_MERCHANT,
        "app_id": None,
        "status": status,
        "hold_reasons": frozenset(),
        "correlation_id": "corr-order",
    }
    return OrderSnapshot(**(values | fields))


def recon_ledger_entry(
    op: LedgerOp = LedgerOp.CREDIT,
    txn: str = "txn-1",
    refund_id: str | None = None,
    amount: int = RECON_AMOUNT,
    currency: str = "USD",
    at: int = RECON_T0,
    caused_by: str = "pay-1",
    order_id: str = RECON_ORDER_ID,
) -> LedgerEntry:
    """A ledger entry as the order stage books it, read back from its wire record."""
    out = LedgerEntryOut(
        entry_id=entry_id(order_id, op, txn, refund_id),
        op=op,
        account_id=RECON_ACCOUNT,
        order_id=order_id,
        amount_minor=amount,
        bonus_minor=0,
        currency=currency,
        provider=RECON_PROVIDER,
        external_txn_id=txn,
        refund_id=refund_id,
        reason=LedgerReason.REFUND if op is LedgerOp.DEBIT else LedgerReason.PAYMENT_CONFIRMED,
        caused_by=caused_by,
        created_at=at,
    )
    return LedgerEntry.from_record(out.to_record())


def recon_credit(**fields: Any) -> LedgerEntry:
    return recon_ledger_entry(LedgerOp.CREDIT, **fields)


def recon_debit(refund_id: str = "ref-1", **fields: Any) -> LedgerEntry:
    fields.setdefault("caused_by", f"refund-{refund_id}")
    return recon_ledger_entry(LedgerOp.DEBIT, refund_id=refund_id, **fields)


def recon_line_record(
    record_id: str = "b1:1",
    kind: str = "PAYMENT",
    txn: str | None = "txn-1",
    amount: int = RECON_AMOUNT,
    settled_at: int = RECON_T0 + RECON_MINUTE,
    **fields: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "record_id": record_id,
        "type": "LINE",
        "batch_id": record_id.split(":")[0],
        "provider": RECON_PROVIDER,
        "merchant_id": RECON_MERCHANT,
        "kind": kind,
        "order_id": RECON_ORDER_ID,
        "external_txn_id": txn,
        "refund_id": None,
        "amount_minor": amount,
        "fee_minor": 30,
        "currency": "USD",
        "settled_at": settled_at,
        "line_count": None,
        "total_amount_minor": None,
        "covers_until": None,
    }
    return record | fields


def recon_line(record_id: str = "b1:1", **fields: Any) -> SettlementLine:
    parsed = parse_settlement(recon_line_record(record_id, **fields))
    assert isinstance(parsed, SettlementLine)
    return parsed


def recon_refund_line(
    record_id: str = "b2:1", refund_id: str = "ref-1", **fields: Any
) -> SettlementLine:
    return recon_line(record_id, kind="REFUND", refund_id=refund_id, **fields)


def recon_watermark(covers_until: int, merchant: str = RECON_MERCHANT) -> WatermarkAdvanced:
    return WatermarkAdvanced(RECON_PROVIDER, merchant, covers_until)


# What the worker's Context is told of the application's topics, for tests that build one.
DIRECTORY = TopicDirectory({spec.name: spec.record for spec in topics.TOPICS}, topics.DLQ)
