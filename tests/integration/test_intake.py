"""Webhook intake through a real broker: verify, deduplicate, re-key, dead-letter."""

from __future__ import annotations

import json
import random

import pytest

from streams import topics
from streams.codecs import default_catalog
from streams.kafka_clients import producer
from streams.providers.testing import (
    make_hmac_delivery,
    make_stripe_delivery,
    make_wechatpay_delivery,
)
from tests.builders import NOW_MS, payment
from tests.integration.intake_fixtures import (
    APIV3_KEY,
    HMAC_SECRETS,
    STRIPE_SECRET,
    provider_secrets,
)
from tests.kafka_harness import decode_all, read_until, settings_from

NOW_S = NOW_MS // 1000


@pytest.fixture
def secrets(tmp_path):
    return provider_secrets(tmp_path)


@pytest.fixture
def intake_env(kafka_env, secrets):
    return {**kafka_env, **secrets.env}


def _produce_deliveries(settings, records: list[dict]) -> list[bytes]:
    catalog = default_catalog()
    out = producer(settings)
    values = [catalog.encode("WebhookDelivery", record) for record in records]
    for record, value in zip(records, values, strict=True):
        out.produce(topics.WEBHOOKS, key=record["provider"], value=value)
    out.flush(30)
    return values


def test_each_payment_comes_out_once_rekeyed_and_rejections_are_dead_lettered(
    intake_env, secrets, workers
):
    settings = settings_from(intake_env)
    hmac_event = payment("ord-h1", "evt-h1")
    stripe_event = payment("ord-s1", "evt_s1", provider="stripe")
    wechat_event = payment("ord-w1", "evt-w1", provider="wechatpay")

    first = make_hmac_delivery(hmac_event, HMAC_SECRETS[0], timestamp=NOW_S)
    # The same event re-sent later, signed afresh with the other (rotating) secret.
    resent = make_hmac_delivery(hmac_event, HMAC_SECRETS[1], timestamp=NOW_S + 60)
    stripe = make_stripe_delivery(stripe_event, STRIPE_SECRET, timestamp=NOW_S)
    wechat = make_wechatpay_delivery(wechat_event, secrets.wechat_key, APIV3_KEY, timestamp=NOW_S)
    forged = make_hmac_delivery(payment("ord-f1", "evt-f1"), "not-our-secret", timestamp=NOW_S)
    stale = make_hmac_delivery(payment("ord-t1", "evt-t1"), HMAC_SECRETS[0], timestamp=NOW_S - 900)

    good = [
        first.as_record("d-1", NOW_MS),
        first.as_record("d-1", NOW_MS),  # the same HTTP request written twice
        resent.as_record("d-2", NOW_MS + 60_000),
        stripe.as_record("d-3", NOW_MS),
        stripe.as_record("d-4", NOW_MS + 5_000),  # provider redelivery
        wechat.as_record("d-5", NOW_MS),
    ]
    bad = [
        forged.as_record("d-6", NOW_MS, source_ip="203.0.113.9"),
        stale.as_record("d-7", NOW_MS),
        {**first.as_record("d-8", NOW_MS), "provider": "paypal"},
    ]
    bad_values = _produce_deliveries(settings, good + bad)[len(good):]

    worker = workers.start(**secrets.env)
    records = read_until(
        settings,
        [topics.PAYMENTS, topics.DLQ, topics.ALERTS],
        lambda rs: sum(r.topic == topics.PAYMENTS for r in rs) >= 3
        and sum(r.topic == topics.DLQ for r in rs) >= 3
        and sum(r.topic == topics.ALERTS for r in rs) >= 2,
        workers=[worker],
    )

    payments = [r for r in records if r.topic == topics.PAYMENTS]
    events = [json.loads(r.value) for r in payments]
    assert sorted((e["provider"], e["event_id"]) for e in events) == [
        ("hmac", "evt-h1"), ("stripe", "evt_s1"), ("wechatpay", "evt-w1")
    ]
    for record, event in zip(payments, events, strict=True):
        assert record.key.decode() == event["order_id"]
        assert event["kind"] == "PAYMENT_SUCCEEDED"
    assert {e["order_id"]: e["amount_minor"] for e in events} == {
        "ord-h1": 1000, "ord-s1": 1000, "ord-w1": 1000
    }

    letters = decode_all(records, topics.DLQ)
    assert sorted(letter["error_kind"] for letter in letters) == [
        "SIGNATURE_INVALID", "STALE_SIGNATURE", "UNKNOWN_PROVIDER"
    ]
    assert sorted(letter["value"] for letter in letters) == sorted(bad_values)

    alerts = decode_all(records, topics.ALERTS)
    assert sorted(a["kind"] for a in alerts) == ["SIGNATURE_INVALID", "STALE_SIGNATURE"]
    forged_alert = next(a for a in alerts if a["kind"] == "SIGNATURE_INVALID")
    assert forged_alert["details"]["delivery_id"] == "d-6"
    assert forged_alert["details"]["source_ip"] == "203.0.113.9"

    log = worker.log()
    for secret in secrets.all_secret_strings:
        assert secret not in log


def test_payments_are_copartitioned_with_orders(intake_env, secrets, workers):
    settings = settings_from(intake_env)
    order_ids = [f"ord-cp-{i}" for i in range(12)]
    deliveries = [
        make_hmac_delivery(payment(o, f"evt-{o}"), HMAC_SECRETS[0], timestamp=NOW_S).as_record(
            f"d-{o}", NOW_MS
        )
        for o in order_ids
    ]
    _produce_deliveries(settings, deliveries)
    out = producer(settings)
    order_partition: dict[str, int] = {}
    for order_id in order_ids:
        out.produce(
            topics.ORDERS, key=order_id, value=b"x",
            on_delivery=lambda err, msg: order_partition.__setitem__(msg.key().decode(),
                                                                     msg.partition()),
        )
    out.flush(30)

    worker = workers.start(**secrets.env)
    records = read_until(
        settings, [topics.PAYMENTS],
        lambda rs: len(rs) >= len(order_ids), workers=[worker],
    )
    assert {r.key.decode(): r.partition for r in records} == order_partition
    assert len(set(order_partition.values())) > 1  # the keys really spread


def test_garbage_is_dead_lettered_with_its_bytes_and_the_worker_keeps_going(
    intake_env, secrets, workers
):
    settings = settings_from(intake_env)
    rng = random.Random(5)
    garbage = [rng.randbytes(rng.randrange(0, 200)) for _ in range(5000)]
    malformed_bodies = [
        b"{", b"[]", b"null", b'{"event_id": 5}', b"\xff\xfe", b'{"type": "payment.succeeded"}',
        json.dumps({**json.loads(make_hmac_delivery(payment("o", "e"), "s", timestamp=1).body),
                    "amount_minor": 12.5}).encode(),
    ]
    malformed = [
        make_hmac_delivery(body, HMAC_SECRETS[0], timestamp=NOW_S).as_record(f"m-{i}", NOW_MS)
        for i, body in enumerate(malformed_bodies)
    ]
    out = producer(settings)
    for value in garbage:
        out.produce(topics.WEBHOOKS, key="junk", value=value)
    out.flush(60)
    malformed_values = _produce_deliveries(settings, malformed)
    last = make_hmac_delivery(payment("ord-after", "evt-after"), HMAC_SECRETS[0], timestamp=NOW_S)
    _produce_deliveries(settings, [last.as_record("d-after", NOW_MS)])

    worker = workers.start(**secrets.env)
    expected = len(garbage) + len(malformed)
    records = read_until(
        settings, [topics.DLQ, topics.PAYMENTS],
        lambda rs: sum(r.topic == topics.DLQ for r in rs) >= expected
        and any(r.topic == topics.PAYMENTS for r in rs),
        timeout_s=240, workers=[worker],
    )
    letters = decode_all(records, topics.DLQ)
    assert len(letters) == expected
    assert sorted(letter["value"] for letter in letters) == sorted(garbage + malformed_values)
    kinds = {letter["value"]: letter["error_kind"] for letter in letters}
    assert {kinds[v] for v in malformed_values} == {"BAD_PAYLOAD"}
    assert {kinds[v] for v in garbage} == {"UNDECODABLE"}
    assert [json.loads(r.value)["order_id"] for r in records if r.topic == topics.PAYMENTS] == [
        "ord-after"
    ]
    assert worker.process.poll() is None
