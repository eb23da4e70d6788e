"""Deterministic generated traffic for the demo, tests and benchmarks.

`demo_traffic` builds an order stream with the callbacks a real provider would send,
including the faults TopUp Guard exists for, and the outcome each order should reach.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.partitioning import partition_for
from streams.providers.testing import SignedDelivery, make_hmac_delivery

BASE_TIME_MS = 1_795_000_000_000  # a fixed instant so a seed always yields the same stream
MERCHANT = "merchant-hmac"


@dataclass(frozen=True)
class GeneratedOrder:
    record: dict[str, Any]
    correlation_id: str


@dataclass(frozen=True)
class Callback:
    delivery: SignedDelivery
    delivery_id: str
    received_at: int


@dataclass
class DemoTraffic:
    orders: list[GeneratedOrder] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    # What each order must end as, and what else the run must raise.
    expected_status: dict[str, str] = field(default_factory=dict)
    expected_alerts: dict[str, int] = field(default_factory=dict)
    expected_dead_letters: dict[str, int] = field(default_factory=dict)
    expected_credits: int = 0
    # Risk decisions other than ALLOW, and reconciliation breaks, by kind.
    expected_decisions: dict[str, int] = field(default_factory=dict)
    expected_breaks: dict[str, int] = field(default_factory=dict)
    # The provider's settlement file, sent once `awaited_order` has been seen.
    settlements: list[dict[str, Any]] = field(default_factory=list)
    awaited_order: str | None = None
    # Orders sent one at a time, each once the previous one's risk decision is out: a
    # ring works over minutes, and velocity answers each attempt as it arrives.
    paced: list[tuple[GeneratedOrder, Callback]] = field(default_factory=list)


def order_created(
    run_id: str, index: int, rng: random.Random, provider: str = "hmac",
    spacing_ms: int = 1_000,
) -> GeneratedOrder:
    """The `index`th order of a run, `spacing_ms` of event time after the one before."""
    order_id = f"{run_id}-o{index:06d}"
    user = rng.randrange(1, 10_000)
    record = {
        "event_id": f"{order_id}-created",
        "type": "CREATED",
        "order_id": order_id,
        "occurred_at": BASE_TIME_MS + index * spacing_ms,
        "account_id": f"acct-{user}",
        "user_id": f"user-{user}",
        "amount_minor": rng.choice((500, 1_000, 2_000, 5_000, 10_000)),
        "currency": "CNY" if provider == "wechatpay" else "USD",
        "provider": provider,
        "merchant_id": f"merchant-{provider}",
        "app_id": None,
        "device_id": f"dev-{rng.randrange(1, 20_000)}",
        "ip": f"198.51.100.{rng.randrange(1, 255)}",
        "payment_token": None,
        "account_created_at": BASE_TIME_MS - rng.randrange(1, 400) * 86_400_000,
        "user_verified": rng.random() < 0.7,
        "promo_id": None,
        "promo_bonus_minor": 0,
        "provider_intent_id": None,
        "refund_id": None,
        "actor": None,
    }
    return GeneratedOrder(record=record, correlation_id=f"corr-{order_id}")


def paid_event(order: dict[str, Any], amount: int, at: int) -> PaymentEvent:
    return PaymentEvent(
        provider="hmac", event_id=f"evt-{order['order_id']}",
        external_txn_id=f"txn-{order['order_id']}", order_id=order["order_id"],
        kind=PaymentKind.PAYMENT_SUCCEEDED, amount_minor=amount,
        currency=order["currency"], merchant_id=MERCHANT, app_id=None, occurred_at=at,
    )


def demo_traffic(
    run_id: str, orders: int, secret: str, partitions: int, seed: int = 7
) -> DemoTraffic:
    """Orders paid through signed HMAC callbacks, with every fault the demo shows."""
    rng = random.Random(seed)
    traffic = DemoTraffic()
    sent = 0

    def callback(event: PaymentEvent, received_at: int, key: str = secret) -> None:
        nonlocal sent
        sent += 1
        delivery = make_hmac_delivery(event, key, timestamp=received_at // 1000)
        traffic.callbacks.append(Callback(delivery, f"{run_id}-d{sent:06d}", received_at))

    for index in range(orders):
        order = order_created(run_id, index, rng)
        record, order_id = order.record, order.record["order_id"]
        paid_at = record["occurred_at"] + 500
        fault = index % 10
        if fault == 1:  # the callback never comes
            traffic.orders.append(order)
            traffic.expected_status[order_id] = "CREATED"
            continue
        if fault == 2:  # the provider delivers twice, then re-sends later
            callback(paid_event(record, record["amount_minor"], paid_at), paid_at)
            callback(paid_event(record, record["amount_minor"], paid_at), paid_at)
            callback(paid_event(record, record["amount_minor"], paid_at), paid_at + 60_000)
        elif fault == 3:  # paid less than ordered: held for review
            callback(paid_event(record, record["amount_minor"] - 2, paid_at), paid_at)
            traffic.orders.append(order)
            traffic.expected_status[order_id] = "ON_HOLD"
            traffic.expected_alerts["AMOUNT_MISMATCH"] = (
                traffic.expected_alerts.get("AMOUNT_MISMATCH", 0) + 1
            )
            continue
        elif fault == 4:  # a forged callback, then the real one
            callback(paid_event(record, record["amount_minor"], paid_at), paid_at, "forged")
            callback(paid_event(record, record["amount_minor"], paid_at), paid_at)
            traffic.expected_alerts["SIGNATURE_INVALID"] = (
                traffic.expected_alerts.get("SIGNATURE_INVALID", 0) + 1
            )
            traffic.expected_dead_letters["SIGNATURE_INVALID"] = (
                traffic.expected_dead_letters.get("SIGNATURE_INVALID", 0) + 1
            )
        elif fault == 5:  # a replayed callback signed an hour before it arrived
            stale = make_hmac_delivery(
                paid_event(record, record["amount_minor"], paid_at), secret,
                timestamp=(paid_at - 3_600_000) // 1000,
            )
            sent += 1
            traffic.callbacks.append(Callback(stale, f"{run_id}-d{sent:06d}", paid_at))
            callback(paid_event(record, record["amount_minor"], paid_at), paid_at)
            traffic.expected_alerts["STALE_SIGNATURE"] = (
                traffic.expected_alerts.get("STALE_SIGNATURE", 0) + 1
            )
            traffic.expected_dead_letters["STALE_SIGNATURE"] = (
                traffic.expected_dead_letters.get("STALE_SIGNATURE", 0) + 1
            )
        else:
            callback(paid_event(record, record["amount_minor"], paid_at), paid_at)
        traffic.orders.append(order)
        traffic.expected_status[order_id] = "CREDITED"
        traffic.expected_credits += 1

    # A payment for an order that never comes: an orphan once event time has moved on.
    ghost = order_created(run_id, orders, rng).record
    callback(paid_event(ghost, ghost["amount_minor"], BASE_TIME_MS), BASE_TIME_MS)
    traffic.expected_alerts["ORPHAN_PAYMENT"] = 1

    _fraud_ring(traffic, run_id, orders + 100, rng, secret)
    _lost_callback(traffic, run_id, orders + 200, rng)

    # Event time moves only with events: a late, unpaid order on every partition carries
    # each partition's watermark past the orphan window, in whatever order topics are read.
    index = orders + 1
    for partition in range(partitions):
        while partition_for(f"{run_id}-o{index:06d}".encode(), partitions) != partition:
            index += 1
        closing = order_created(run_id, index, rng).record
        closing["occurred_at"] = BASE_TIME_MS + (orders + 3_600) * 1_000
        traffic.orders.append(GeneratedOrder(closing, f"corr-{closing['order_id']}"))
        traffic.expected_status[closing["order_id"]] = "CREATED"
        index += 1
    return traffic


def _fraud_ring(
    traffic: DemoTraffic, run_id: str, first: int, rng: random.Random, secret: str
) -> None:
    """Four new accounts topping up from one device within minutes: from the third on,
    the default rules see a device farm (75 points) and block; paying anyway is flagged."""
    for n in range(4):
        order = order_created(run_id, first + n, rng)
        record = order.record
        record["device_id"] = f"{run_id}-dev-farm"
        record["account_id"] = record["user_id"] = f"{run_id}-farm-{n}"
        record["occurred_at"] = BASE_TIME_MS + n * 60_000
        paid_at = record["occurred_at"] + 500
        delivery = make_hmac_delivery(paid_event(record, record["amount_minor"], paid_at),
                                      secret, timestamp=paid_at // 1000)
        traffic.paced.append((order, Callback(delivery, f"{run_id}-ring-{n}", paid_at)))
        blocked = n >= 2
        traffic.expected_status[record["order_id"]] = "ON_HOLD" if blocked else "CREDITED"
        traffic.expected_credits += 0 if blocked else 1
    traffic.expected_decisions["BLOCK"] = 2
    traffic.expected_alerts["PAID_WHILE_BLOCKED"] = 2


def _lost_callback(traffic: DemoTraffic, run_id: str, index: int, rng: random.Random) -> None:
    """A payment whose callback never comes: the provider's settlement file proves it, and
    reconciliation credits it with the entry id the callback would have had."""
    order = order_created(run_id, index, rng)
    record = order.record
    traffic.orders.append(order)
    traffic.awaited_order = record["order_id"]
    traffic.expected_status[record["order_id"]] = "CREDITED"
    traffic.expected_credits += 1
    traffic.expected_breaks["MISSING_CREDIT/AUTO_CORRECTED"] = 1
    batch = f"{run_id}-settlement-1"
    paid_at = record["occurred_at"] + 500
    line = {
        "record_id": f"{batch}-1", "type": "LINE", "batch_id": batch, "provider": "hmac",
        "merchant_id": MERCHANT, "kind": "PAYMENT", "order_id": record["order_id"],
        "external_txn_id": f"txn-{record['order_id']}", "refund_id": None,
        "amount_minor": record["amount_minor"], "fee_minor": record["amount_minor"] // 100,
        "currency": record["currency"], "settled_at": paid_at, "line_count": None,
        "total_amount_minor": None, "covers_until": None,
    }
    # Closed two hours on, its watermark covering nothing the demo credited: it moves
    # event time past the grace a callback gets, and claims no other payment is missing.
    closed = {
        **line, "record_id": f"{batch}-closed", "type": "BATCH_CLOSED", "kind": None,
        "order_id": None, "external_txn_id": None, "amount_minor": 0, "fee_minor": 0,
        "currency": None, "settled_at": paid_at + 2 * 3_600_000, "line_count": 1,
        "total_amount_minor": record["amount_minor"],
        "covers_until": BASE_TIME_MS - 86_400_000,
    }
    traffic.settlements = [line, closed]
