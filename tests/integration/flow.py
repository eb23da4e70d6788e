"""Producing an order's life (orders, signed callbacks, operator commands) to the real broker."""

from __future__ import annotations

from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.domain.common.payments import PaymentEvent
from streams.kafka_clients import producer
from streams.partitioning import partition_for
from streams.providers.testing import make_hmac_delivery
from tests.integration.intake_fixtures import HMAC_SECRETS


def partition_of(key: str, partitions: int = 4) -> int:
    """The partition the Java/aiokafka partitioner (and ours) gives a key."""
    return partition_for(key.encode(), partitions)


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
