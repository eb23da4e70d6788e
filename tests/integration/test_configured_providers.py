"""Orders and settlement records naming a known provider that is not configured here are
dead-lettered as UNKNOWN_PROVIDER, once each; the worker goes on."""

from __future__ import annotations

from collections import Counter

from streams import topics
from tests.builders import NOW_MS, batch_closed, order_event, payment_event, settlement_line
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from


def test_unconfigured_providers_are_dead_lettered_once(kafka_env, workers):
    settings = settings_from(kafka_env)
    # Only HMAC secrets: stripe and wechatpay are known providers, but not configured.
    worker = workers.start(TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS))
    flow = Flow(settings)
    flow.order(order_event("o-stripe", provider="stripe"))
    flow.order(order_event("o-hmac"))
    flow.settlement(settlement_line("r-wechat", "batch-w", "o-hmac", 1000, NOW_MS,
                                    provider="wechatpay"))
    flow.settlement({**batch_closed("batch-w", 1, 1000, NOW_MS, None), "provider": "wechatpay"})
    flow.flush()
    flow.callback(payment_event("o-hmac", amount=1000))
    flow.flush()

    def done(rs: list) -> bool:
        credited = {c["order_id"] for c in decode_all(rs, topics.CREDITS)}
        return "o-hmac" in credited and len(decode_all(rs, topics.DLQ)) >= 3

    records = read_until(settings, [topics.DLQ, topics.CREDITS], done, workers=[worker])
    assert Counter(c["order_id"] for c in decode_all(records, topics.CREDITS)) == {"o-hmac": 1}
    letters = decode_all(records, topics.DLQ)
    # One dead letter per refused record, though the order and risk stages both read orders.
    assert Counter(d["source_topic"] for d in letters) == {topics.ORDERS: 1,
                                                          topics.SETTLEMENTS: 2}, letters
    assert {d["error_kind"] for d in letters} == {"UNKNOWN_PROVIDER"}
    assert all("which is not configured here (configured: hmac" in d["error"]
               for d in letters)
    assert [d["key"] for d in letters if d["source_topic"] == topics.ORDERS] == [b"o-stripe"]
    assert worker.process.poll() is None
