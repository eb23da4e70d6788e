"""The worker's HTTP surface: the webhook receiver, /metrics and /health.

The receiver writes each callback to topup.webhooks exactly as received and answers 2xx
only once the broker has acknowledged the write (acks=all); any failure answers 5xx so
the provider retries. It writes with its own idempotent, non-transactional producer:
inside the workers' transactions the record would only become readable at their next
commit, and an HTTP request has no source partition to belong to.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from faust.web import View

from streams import topics
from streams.config import PROVIDERS

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)


class RateLimiter:
    """A token bucket per source IP: `rate` requests per second, bursts up to `burst`."""

    MAX_TRACKED = 100_000

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, now: float) -> bool:
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if len(self._buckets) >= self.MAX_TRACKED and key not in self._buckets:
            # Bounded memory under a flood of distinct addresses: forget the oldest half.
            for stale in list(self._buckets)[: self.MAX_TRACKED // 2]:
                del self._buckets[stale]
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


class WebhookReceiver:
    SEND_TIMEOUT_S = 10.0

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        settings = pipeline.settings
        self.max_body = settings.webhook_max_body_bytes
        self.limiter = RateLimiter(settings.webhook_rate_per_ip, settings.webhook_rate_burst)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.pipeline.settings.bootstrap_servers,
                    acks="all",
                    enable_idempotence=True,
                    request_timeout_ms=int(self.SEND_TIMEOUT_S * 1000),
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def receive(
        self,
        provider: str,
        headers: dict[str, str],
        body: bytes | None,
        source_ip: str | None,
        now: float,
    ) -> Reply:
        """`body` is None when it exceeded the size limit while being read."""
        metrics = self.pipeline.metrics
        if provider not in PROVIDERS:
            return Reply(404, {"error": f"unknown provider {provider[:40]!r}"})
        if not self.limiter.allow(source_ip or "unknown", now):
            metrics.inc("topup_webhook_http_total", provider=provider, outcome="rate_limited")
            return Reply(429, {"error": "too many requests from this address"})
        if body is None:
            metrics.inc("topup_webhook_http_total", provider=provider, outcome="too_large")
            return Reply(413, {"error": f"body larger than {self.max_body} bytes"})
        delivery_id = f"dlv_{uuid.uuid4().hex}"
        record = {
            "delivery_id": delivery_id,
            "provider": provider,
            "received_at": int(now * 1000),
            "headers": {name.lower(): value for name, value in headers.items()},
            "body": body,
            "source_ip": source_ip,
        }
        value = self.pipeline.catalog.encode("WebhookDelivery", record)
        try:
            producer = await self._started_producer()
            await asyncio.wait_for(
                producer.send_and_wait(topics.WEBHOOKS, value=value, key=provider.encode()),
                self.SEND_TIMEOUT_S,
            )
        except Exception as exc:  # any failure to persist must make the provider retry
            log.warning("webhook %s not persisted: %s", delivery_id, type(exc).__name__)
            metrics.inc("topup_webhook_http_total", provider=provider, outcome="unavailable")
            return Reply(503, {"error": "not persisted, retry later"})
        metrics.inc("topup_webhook_http_total", provider=provider, outcome="accepted")
        return Reply(202, {"delivery_id": delivery_id})


async def read_limited(request: Any, limit: int) -> bytes | None:
    """The body, or None if it is longer than `limit` (never reads more than limit + 1)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = await request.content.read(limit + 1)
    return None if len(body) > limit else body


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    receiver = WebhookReceiver(pipeline)

    @app.page("/webhooks/{provider}")
    class WebhookView(View):
        async def post(self, request: Any, provider: str) -> Any:
            body = await read_limited(request, receiver.max_body)
            reply = await receiver.receive(
                provider, dict(request.headers), body, request.remote, time.time()
            )
            return self.json(reply.body, status=reply.status)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Any) -> Any:
            return self.text(
                pipeline.metrics.render(), content_type="text/plain; version=0.0.4"
            )

    @app.page("/accounts/{account_id}/balance")
    class BalanceView(View):
        @app.table_route(table=pipeline.balances, match_info="account_id")
        async def get(self, request: Any, account_id: str) -> Any:
            # Served by the worker that owns the account's partition (faust forwards).
            balance = pipeline.balances.get(account_id) or {}
            return self.json({"account_id": account_id, "balances_minor": balance})

    @app.page("/health")
    class HealthView(View):
        async def get(self, request: Any) -> Any:
            # Ready once partitions are assigned and every table is restored: before
            # that, the worker serves HTTP but processes nothing.
            ready = app.tables.recovery.completed.is_set() and not app.rebalancing
            body = {"status": "ok" if ready else "starting", "app": pipeline.settings.app_id}
            return self.json(body, status=200 if ready else 503)
