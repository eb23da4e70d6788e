"""POST /webhooks/{provider} on a real worker, against a real broker."""

from __future__ import annotations

import json
import time

from bench.harness import recreate_topics as reset_topics
from streams import topics
from streams.kafka_clients import read_committed
from streams.providers.testing import make_hmac_delivery
from tests.builders import payment
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import (
    decode_all,
    http,
    read_until,
    settings_from,
    start_dedicated_broker,
    wait_for_http,
)


def _signed_now(order_id: str) -> tuple[bytes, dict[str, str]]:
    delivery = make_hmac_delivery(
        payment(order_id, f"evt-{order_id}"), HMAC_SECRETS[0], timestamp=int(time.time())
    )
    # Mixed-case names on purpose: the receiver must store them lower-cased.
    headers = {"Content-Type": "application/json",
               "X-TopUp-Signature": delivery.headers["x-topup-signature"]}
    return delivery.body, headers


def test_accepts_only_what_is_readable_and_limits_size_and_rate(kafka_env, workers, tmp_path):
    settings = settings_from(kafka_env)
    worker = workers.start(
        TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS),
        TOPUP_WEBHOOK_MAX_BODY_BYTES="2048",
        TOPUP_WEBHOOK_RATE_PER_IP="1",
        TOPUP_WEBHOOK_RATE_BURST="5",
    )
    wait_for_http(worker)
    url = f"http://127.0.0.1:{worker.webhook_port}/webhooks/hmac"

    body, headers = _signed_now("ord-http-1")
    status, reply = http("POST", url, body, headers)
    assert status == 202, reply
    delivery_id = json.loads(reply)["delivery_id"]
    # Readable by a read_committed consumer as soon as the 2xx is out, without waiting.
    now = read_committed(settings, [topics.WEBHOOKS], until=time.monotonic() + 10, idle_s=0.5)
    [stored] = [d for d in decode_all(now, topics.WEBHOOKS) if d["delivery_id"] == delivery_id]
    assert stored["body"] == body
    assert stored["provider"] == "hmac"
    assert stored["headers"]["x-topup-signature"] == headers["X-TopUp-Signature"]
    assert stored["source_ip"] == "127.0.0.1"
    assert abs(stored["received_at"] - time.time() * 1000) < 60_000

    # The stored delivery flows on through intake like any other.
    records = read_until(settings, [topics.PAYMENTS], lambda rs: len(rs) >= 1, workers=[worker])
    assert [json.loads(r.value)["order_id"] for r in records] == ["ord-http-1"]

    status, _ = http("POST", url, b"x" * 4096, headers)
    assert status == 413
    paypal = f"http://127.0.0.1:{worker.webhook_port}/webhooks/paypal"
    status, _ = http("POST", paypal, body, headers)
    assert status == 404
    # Known, but without secrets here: refused, so that the provider sends it again.
    stripe = f"http://127.0.0.1:{worker.webhook_port}/webhooks/stripe"
    status, reply = http("POST", stripe, body, headers)
    assert status == 404 and b"not configured" in reply

    statuses = [http("POST", url, body, headers)[0] for _ in range(10)]
    assert 429 in statuses
    assert set(statuses) <= {202, 429}

    status, metrics = http("GET", f"http://127.0.0.1:{worker.web_port}/metrics")
    assert status == 200
    # The public listener serves nothing but webhooks.
    assert http("GET", f"http://127.0.0.1:{worker.webhook_port}/metrics")[0] in (404, 405)
    text = metrics.decode()
    assert 'topup_webhook_http_total{outcome="rate_limited",provider="hmac"}' in text
    assert 'topup_webhooks_received_total{provider="hmac"}' in text
    assert "topup_intake_lag_seconds" in text


def test_answers_5xx_when_the_broker_is_down(kafka_env, workers, tmp_path):
    broker = start_dedicated_broker(tmp_path / "kafka")
    try:
        env = {**kafka_env, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
        reset_topics(settings_from(env))
        worker = workers.start(
            "down", KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
            TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS),
        )
        wait_for_http(worker)
        url = f"http://127.0.0.1:{worker.webhook_port}/webhooks/hmac"
        body, headers = _signed_now("ord-down-1")
        status, reply = http("POST", url, body, headers)
        assert status == 202, reply

        broker.stop()
        status, reply = http("POST", url, body, headers)
        assert status == 503, reply
        # An outage is waited out, not a reason to die.
        assert worker.process.poll() is None, worker.log()[-3000:]
        worker.kill()
    finally:
        broker.stop()
