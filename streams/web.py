"""The worker's HTTP surface: the webhook receiver, balances, /metrics and /health.

The receiver writes each callback to topup.webhooks exactly as received and answers 2xx
only once the broker has acknowledged the write (acks=all); any failure answers 5xx so
the provider retries. It writes with its own idempotent, non-transactional producer:
inside the workers' transactions the record would only become readable at their next
commit, and an HTTP request has no source partition to belong to.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiokafka import AIOKafkaProducer

from streams import topics
from streams.agents.balances import BALANCES
from streams.codecs import SchemaCatalog
from streams.config import PROVIDERS, Settings
from streams.metrics import Metrics
from streams.partitioning import partition_for

if TYPE_CHECKING:
    from streams.runtime.worker import Worker

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

    def __init__(self, settings: Settings, catalog: SchemaCatalog, metrics: Metrics) -> None:
        self.settings, self.catalog, self.metrics = settings, catalog, metrics
        self.max_body = settings.webhook_max_body_bytes
        self.limiter = RateLimiter(settings.webhook_rate_per_ip, settings.webhook_rate_burst)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.bootstrap_servers,
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
        metrics = self.metrics
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
        value = self.catalog.encode("WebhookDelivery", record)
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


def build_app(worker: Worker) -> web.Application:
    settings, metrics = worker.settings, worker.metrics
    receiver = WebhookReceiver(settings, worker.catalog, metrics)

    async def webhook(request: web.Request) -> web.Response:
        body = await read_limited(request, receiver.max_body)
        reply = await receiver.receive(
            request.match_info["provider"], dict(request.headers), body, request.remote,
            time.time(),
        )
        return web.json_response(reply.body, status=reply.status)

    async def balance(request: web.Request) -> web.Response:
        account_id = request.match_info["account_id"]
        partition = partition_for(account_id.encode(), settings.partitions)
        owned, value = worker.read_store(BALANCES.name, partition, account_id)
        if not owned:
            # Each worker answers for the partitions it owns; 421 tells the caller to ask
            # another worker rather than trusting an empty balance.
            return web.json_response(
                {"error": f"partition {partition} of {account_id!r} is not served here"},
                status=421,
            )
        return web.json_response({"account_id": account_id, "balances_minor": value or {}})

    async def metrics_page(request: web.Request) -> web.Response:
        worker.health()  # refreshes the time-since-commit gauge
        return web.Response(text=metrics.render(), content_type="text/plain",
                            headers={"X-Prometheus-Format": "0.0.4"})

    async def health(request: web.Request) -> web.Response:
        # 200 once partitions are assigned and every store is restored, and while the
        # worker commits what it has in hand; 503 with the reason otherwise.
        healthy, why = worker.health()
        body = {**why, "app": settings.app_id,
                "seconds_since_last_commit": round(worker.seconds_since_commit(), 1)}
        return web.json_response(body, status=200 if healthy else 503)

    app = web.Application()
    app.router.add_post("/webhooks/{provider}", webhook)
    app.router.add_get("/accounts/{account_id}/balance", balance)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/health", health)
    return app


def serve_in_background(worker: Worker) -> threading.Thread:
    """The HTTP surface runs on its own event loop, beside the processing loop."""
    started = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(build_app(worker), access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, worker.settings.web_host, worker.settings.web_port)
        loop.run_until_complete(site.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="http", daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("HTTP server did not start")
    return thread
