"""The worker's HTTP surface, on two listeners.

The public listener (TOPUP_WEBHOOK_HOST/PORT) carries only POST /webhooks/{provider}; the
operator listener (TOPUP_WEB_HOST/PORT, default 127.0.0.1) carries balances, /metrics and
/health, with an optional bearer token (TOPUP_OPERATOR_TOKEN). Exposing webhooks to the
internet therefore exposes no balance.

The receiver writes each callback to topup.webhooks exactly as received and answers 2xx
only once the broker has acknowledged the write (acks=all); any failure answers 5xx so
the provider retries. It writes with its own idempotent, non-transactional producer:
inside the workers' transactions the record would only become readable at their next
commit, and an HTTP request has no source partition to belong to.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import PayloadEncodingError
from aiokafka import AIOKafkaProducer

from streams import topics
from streams.codecs import SchemaCatalog
from streams.config import PROVIDERS, Settings
from streams.domain.common.configured_providers import configured_providers
from streams.http_guard import BodyTooLarge, ConnectionGuard, joined_headers, read_whole_body
from streams.kafka_clients import aiokafka_config
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.stages.balances import BALANCES

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
        self.providers = configured_providers(settings)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **aiokafka_config(self.settings),
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
        if provider not in self.providers:
            # Not 202: intake could only dead-letter it, and an acknowledged callback is
            # never sent again; a 404 makes the provider retry until its secrets are set.
            return Reply(404, {"error": f"provider {provider!r} is not configured here "
                                        f"(no webhook secrets)"})
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
            # Lower-cased names, repeated headers joined with ", " (see http_guard).
            "headers": joined_headers(headers.items()),
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


def _unauthorized() -> web.Response:
    return web.json_response({"error": "missing or wrong bearer token"}, status=401,
                             headers={"WWW-Authenticate": "Bearer"})


def _token_ok(request: web.Request, token: str | None) -> bool:
    if token is None:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def build_public_app(worker: Worker, guard: ConnectionGuard, settings: Settings
                     ) -> web.Application:
    """The listener to expose to providers: only POST /webhooks/{provider}."""
    receiver = WebhookReceiver(settings, worker.catalog, worker.metrics)

    async def webhook(request: web.Request) -> web.Response:
        try:
            body: bytes | None = await read_whole_body(
                request, receiver.max_body, settings.webhook_read_timeout_s)
        except BodyTooLarge:
            body = None
        except TimeoutError:
            response = web.json_response({"error": "body not received in time"}, status=408)
            response.force_close()
            return response
        except (ClientPayloadError, PayloadEncodingError, ConnectionError):
            # The client broke off or sent a malformed body: nothing to store, no 2xx.
            response = web.json_response({"error": "incomplete body"}, status=400)
            response.force_close()
            return response
        reply = await receiver.receive(
            request.match_info["provider"], joined_headers(request.headers.items()), body,
            request.remote, time.time(),
        )
        response = web.json_response(reply.body, status=reply.status)
        if reply.status == 413:
            response.force_close()  # do not drain the rest of an oversized body
        return response

    app = web.Application(middlewares=[guard.middleware()])
    app.router.add_post("/webhooks/{provider}", webhook)
    return app


def build_operator_app(worker: Worker, settings: Settings) -> web.Application:
    """The listener for operators (default 127.0.0.1): balances, /metrics, /health, and
    the console under /console when TOPUP_CONSOLE_TOKEN is set."""
    metrics = worker.metrics
    token = settings.operator_token

    async def balance(request: web.Request) -> web.Response:
        if not _token_ok(request, token):
            return _unauthorized()
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
        if settings.operator_token_on_metrics and not _token_ok(request, token):
            return _unauthorized()
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
    app.router.add_get("/accounts/{account_id}/balance", balance)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/health", health)
    if settings.console_token is not None:
        # Imported only when enabled: a worker without a console needs no Jinja2.
        from streams.console import build_console_app

        app.add_subapp("/console", build_console_app(settings, settings.console_token))
    return app


async def _start_listeners(worker: Worker, settings: Settings) -> ConnectionGuard:
    loop = asyncio.get_running_loop()
    operator = web.AppRunner(build_operator_app(worker, settings), access_log=None)
    await operator.setup()
    await web.TCPSite(operator, settings.web_host, settings.web_port).start()

    guard = ConnectionGuard(settings.webhook_header_timeout_s, settings.webhook_max_connections)
    # auto_decompress=False: a gzip body is stored as the provider sent (and signed) it,
    # with its content-encoding header, not as aiohttp would inflate it.
    public = web.AppRunner(build_public_app(worker, guard, settings), access_log=None,
                           auto_decompress=False,
                           keepalive_timeout=float(settings.webhook_header_timeout_s))
    await public.setup()
    assert public.server is not None
    await loop.create_server(guard.wrap(public.server), settings.webhook_host,
                             settings.webhook_port, reuse_address=True)
    guard.sweeper = loop.create_task(guard.sweep_forever())
    return guard


def serve_in_background(worker: Worker, settings: Settings) -> threading.Thread:
    """Both listeners run on their own event loop, beside the processing loop."""
    started = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(_start_listeners(worker, settings))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="http", daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("HTTP server did not start")
    return thread
