"""A day of generated traffic with injected faults: its orders and their labels, what
each fault must cause (EXPECTED), the providers' settlement lines and batch files, and the
order stage's inputs for each order. Shared by the pure-stage simulation of the day
(tests/unit/test_recon_population.py) and its run against the broker
(tests/integration/test_reconciliation_day.py)."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.domain.orders.inputs import (
    OrderEvent,
    OrderEventType,
    RiskDecision,
    RiskVerdict,
)
from streams.domain.recon.inputs import (
    BatchClosed,
    SettlementKind,
    SettlementLine,
)

SEED = 20240601
ORDERS = 3000
T0 = 1_700_006_400_000  # a whole hour
SECOND, MINUTE, HOUR = 1000, 60_000, 3_600_000
ORDER_WINDOW = 22 * HOUR
LAST_BATCH_HOUR = 30
FILE_DELAY = 10 * MINUTE  # a batch file is imported this long after its hour ends
CURRENCY = {"hmac": "USD", "stripe": "EUR", "wechatpay": "CNY"}
MERCHANTS = 2

# fault label -> the one break it must cause, as "CATEGORY/ACTION"; None: no break.
EXPECTED: dict[str, str | None] = {
    "clean": None,
    "unpaid": None,
    "clean_refund": None,
    "dropped_callback": "MISSING_CREDIT/AUTO_CORRECTED",
    "paid_while_blocked": "MISSING_CREDIT/MANUAL_REVIEW",
    "amount_drift": "AMOUNT_MISMATCH/MANUAL_REVIEW",
    "currency_drift": "CURRENCY_MISMATCH/MANUAL_REVIEW",
    "missing_line": "MISSING_AT_PROVIDER/FROZEN",
    "duplicated_line": "DUPLICATE_SETTLEMENT/MANUAL_REVIEW",
    "refund_not_settled": "REFUND_STATUS_MISMATCH/MANUAL_REVIEW",
    "refund_not_debited": "REFUND_STATUS_MISMATCH/MANUAL_REVIEW",
}
FAULTS = {
    "dropped_callback": 24,
    "paid_while_blocked": 6,
    "amount_drift": 15,
    "currency_drift": 6,
    "missing_line": 15,
    "duplicated_line": 15,
    "refund_not_settled": 8,
    "refund_not_debited": 8,
    "clean_refund": 120,
}
REFUND_LABELS = {"clean_refund", "refund_not_settled", "refund_not_debited"}


@dataclass
class Order:
    order_id: str
    provider: str
    merchant_id: str
    amount: int
    created_at: int
    label: str
    paid_at: int | None = None
    refund_at: int | None = None  # when the provider refunded


@dataclass
class ProviderLine:
    """A transaction the provider put in a settlement file."""

    txn_time: int
    order: Order
    kind: str
    amount: int
    currency: str
    batch_hour: int
    refund_id: str | None = None


# --- generating the day ----------------------------------------------------------------


def generate(rng: random.Random) -> list[Order]:
    orders = []
    for number in range(ORDERS):
        provider = rng.choice(sorted(CURRENCY))
        orders.append(
            Order(
                order_id=f"ord-{number:05d}",
                provider=provider,
                merchant_id=f"{provider}-m{rng.randrange(MERCHANTS)}",
                amount=rng.choice([500, 1000, 2000, 5000, 10_000]) + rng.randrange(100),
                created_at=T0 + rng.randrange(ORDER_WINDOW),
                label="unpaid" if rng.random() < 0.08 else "clean",
            )
        )
    paid = [order for order in orders if order.label == "clean"]
    faulty = rng.sample(paid, sum(FAULTS.values()))
    start = 0
    for label, count in FAULTS.items():
        for order in faulty[start : start + count]:
            order.label = label
        start += count
    for order in orders:
        if order.label != "unpaid":
            order.paid_at = order.created_at + rng.randrange(10 * SECOND, 10 * MINUTE)
        if order.label in REFUND_LABELS:
            assert order.paid_at is not None
            order.refund_at = order.paid_at + rng.randrange(HOUR, 3 * HOUR)
    return orders


def hour_index(at: int) -> int:
    return (at - T0) // HOUR


def provider_lines(orders: list[Order]) -> list[ProviderLine]:
    lines = []
    for order in orders:
        if order.paid_at is None or order.label == "missing_line":
            continue
        currency = CURRENCY[order.provider]
        amount = order.amount + (37 if order.label == "amount_drift" else 0)
        if order.label == "currency_drift":
            currency = "USD" if currency != "USD" else "EUR"
        hour = hour_index(order.paid_at)
        lines.append(ProviderLine(order.paid_at, order, "PAYMENT", amount, currency, hour))
        if order.label == "duplicated_line":
            # The same transaction again, in the next file.
            lines.append(ProviderLine(order.paid_at, order, "PAYMENT", amount, currency, hour + 1))
        if order.refund_at is not None and order.label != "refund_not_settled":
            lines.append(
                ProviderLine(
                    order.refund_at,
                    order,
                    "REFUND",
                    order.amount,
                    currency,
                    hour_index(order.refund_at),
                    refund_id=f"ref-{order.order_id}",
                )
            )
    return lines


def settlement_files(
    lines: list[ProviderLine], wrong_totals: tuple[str, str, int]
) -> list[tuple[int, list[dict[str, Any]]]]:
    """(import time, records) per provider, merchant and hour: lines, then BATCH_CLOSED."""
    by_batch: dict[tuple[str, str, int], list[ProviderLine]] = defaultdict(list)
    for line in sorted(lines, key=lambda line: (line.txn_time, line.order.order_id, line.kind)):
        by_batch[(line.order.provider, line.order.merchant_id, line.batch_hour)].append(line)
    files = []
    for provider in sorted(CURRENCY):
        for merchant in range(MERCHANTS):
            merchant_id = f"{provider}-m{merchant}"
            for hour in range(LAST_BATCH_HOUR + 1):
                batch_id = f"{merchant_id}-h{hour:02d}"
                hour_end = T0 + (hour + 1) * HOUR
                records = [
                    _line_record(batch_id, number, line)
                    for number, line in enumerate(by_batch[(provider, merchant_id, hour)], 1)
                ]
                count, total = len(records), sum(r["amount_minor"] for r in records)
                if (provider, merchant_id, hour) == wrong_totals:
                    count, total = count + 1, total + 999
                close = BatchClosed(
                    record_id=f"{batch_id}:close",
                    batch_id=batch_id,
                    provider=provider,
                    merchant_id=merchant_id,
                    settled_at=hour_end,
                    line_count=count,
                    total_amount_minor=total,
                    covers_until=hour_end,
                )
                files.append((hour_end + FILE_DELAY, [*records, close.to_record()]))
    return files


def _line_record(batch_id: str, number: int, line: ProviderLine) -> dict[str, Any]:
    order = line.order
    return SettlementLine(
        record_id=f"{batch_id}:{number}",
        batch_id=batch_id,
        provider=order.provider,
        merchant_id=order.merchant_id,
        kind=SettlementKind(line.kind),
        order_id=order.order_id,
        external_txn_id=f"txn-{order.order_id}",
        refund_id=line.refund_id,
        amount_minor=line.amount,
        fee_minor=line.amount // 100,
        currency=line.currency,
        settled_at=line.txn_time + 2 * MINUTE,
    ).to_record()


# --- the order stage's inputs ----------------------------------------------------------


def order_event(order: Order, type_: str, at: int, **fields: Any) -> OrderEvent:
    return OrderEvent(
        event_id=f"{type_.lower()}-{order.order_id}-{at}",
        type=OrderEventType(type_),
        order_id=order.order_id,
        occurred_at=at,
        account_id=f"acc-{order.order_id}",
        user_id=f"user-{order.order_id}",
        amount_minor=order.amount if type_ in ("CREATED", "REFUND_REQUESTED") else 0,
        currency=CURRENCY[order.provider],
        provider=order.provider,
        merchant_id=order.merchant_id,
        **fields,
    )


def callback(
    order: Order, kind: PaymentKind, at: int, refund_id: str | None = None
) -> PaymentEvent:
    return PaymentEvent(
        provider=order.provider,
        event_id=f"{kind.value.lower()}-{order.order_id}",
        external_txn_id=f"txn-{order.order_id}",
        order_id=order.order_id,
        kind=kind,
        amount_minor=order.amount,
        currency=CURRENCY[order.provider],
        merchant_id=order.merchant_id,
        app_id=None,
        occurred_at=at,
        refund_id=refund_id,
    )


def order_inputs(order: Order) -> list[tuple[int, Any]]:
    created = order.created_at
    inputs: list[tuple[int, Any]] = [(created, order_event(order, "CREATED", created))]
    if order.label == "paid_while_blocked":
        verdict = RiskVerdict(order.order_id, RiskDecision.BLOCK, 95, ("r",), created + 1, "v1")
        inputs.append((created + SECOND, verdict))
    inputs.append((created + 2 * SECOND, order_event(order, "PAYMENT_INITIATED", created)))
    if order.paid_at is None:
        inputs.append((created + 30 * MINUTE, order_event(order, "CANCELED", created)))
        return inputs
    paid = callback(order, PaymentKind.PAYMENT_SUCCEEDED, order.paid_at)
    if order.label != "dropped_callback":
        inputs.append((order.paid_at, paid))
    elif int(order.order_id[-1]) % 2:
        inputs.append((order.paid_at + 3 * HOUR, paid))  # the callback comes back, late
    if order.refund_at is not None:
        refund_id = f"ref-{order.order_id}"
        request = order_event(order, "REFUND_REQUESTED", order.refund_at, refund_id=refund_id)
        inputs.append((order.refund_at - 5 * MINUTE, request))
        if order.label != "refund_not_debited":
            done = callback(order, PaymentKind.REFUND_SUCCEEDED, order.refund_at, refund_id)
            inputs.append((order.refund_at, done))
    return inputs
