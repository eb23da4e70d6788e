"""Producing an order's life (orders, signed callbacks, operator commands) to the real broker."""

from __future__ import annotations

from typing import Any

from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.domain.payments import PaymentEvent, PaymentKind
from streams.kafka_clients import producer
from streams.partitioning import partition_for
from streams.providers.testing import make_hmac_delivery
from tests.integration.intake_fixtures import HMAC_SECRETS, NOW_MS

MERCHANT = "merchant-hmac"


def partition_of(key: str, partitions: int = 4) -> int:
    """The partition the Java/aiokafka partitioner (and ours) gives a key."""
    return partition_for(key.encode(), partitions)


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


class Flow:
    def __init__(self, settings: Settings) -> None:
        self.catalog = default_catalog()
        self.producer = producer(settings)
        self.deliveries = 0

    def order(self, record: dict, correlation_id: str | None = None) -> None:
        headers = [("correlation_id", correlation_id.encode())] if correlation_id else None
        self.producer.produce(
            topics.ORDERS, key=record["order_id"],
            value=self.catalog.encode("OrderEvent", record), headers=headers,
        )

    def callback(self, event: PaymentEvent, received_at: int | None = None,
                 secret: str = HMAC_SECRETS[0]) -> None:
        received_at = event.occurred_at if received_at is None else received_at
        self.deliveries += 1
        delivery = make_hmac_delivery(event, secret, timestamp=received_at // 1000)
        record = delivery.as_record(f"dlv-{self.deliveries}-{event.event_id}", received_at)
        self.producer.produce(
            topics.WEBHOOKS, key="hmac", value=self.catalog.encode("WebhookDelivery", record)
        )

    def control(self, action: str, scope: str, command_id: str, at: int) -> None:
        record = {
            "command_id": command_id, "action": action, "scope": scope,
            "reason": "test", "issued_by": "ops@test", "issued_at": at,
        }
        self.producer.produce(
            topics.CONTROL, key=scope, value=self.catalog.encode("ControlCommand", record)
        )

    def settlement(self, record: dict, key: str = "settlement-file") -> None:
        """One key for a whole file keeps its records in order, as an importer would."""
        self.producer.produce(
            topics.SETTLEMENTS, key=key, value=self.catalog.encode("SettlementRecord", record)
        )

    def flush(self) -> None:
        assert self.producer.flush(30) == 0
