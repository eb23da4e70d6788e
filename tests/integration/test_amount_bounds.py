"""Amounts above TOPUP_MAX_AMOUNT_MINOR are refused where they enter, once each."""

from __future__ import annotations

from collections import Counter

from streams import topics
from tests.builders import NOW_MS, order_event, payment_event, settlement_line
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from

LIMIT = 50_000


def test_amounts_over_the_configured_limit_are_dead_lettered_once(kafka_env, workers):
    settings = settings_from(kafka_env)
    worker = workers.start(TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS),
                           TOPUP_MAX_AMOUNT_MINOR=str(LIMIT))
    flow = Flow(settings)
    flow.order(order_event("o-big", amount_minor=LIMIT + 1))
    flow.order(order_event("o-bonus", amount_minor=1000, promo_id="promo-1",
                           promo_bonus_minor=LIMIT + 1))
    flow.order(order_event("o-at-limit", amount_minor=LIMIT))
    flow.callback(payment_event("o-at-limit", amount=LIMIT))
    # A callback claiming more than the limit for an order that exists.
    flow.order(order_event("o-pay-big", amount_minor=1000))
    flow.callback(payment_event("o-pay-big", amount=LIMIT + 1))
    flow.settlement(settlement_line("r-big", "batch-big", "o-at-limit", LIMIT + 1, NOW_MS))
    flow.flush()
    # Afterwards an ordinary order and its payment: credited once.
    flow.order(order_event("o-after", amount_minor=1000))
    flow.callback(payment_event("o-after", amount=1000))
    flow.flush()

    def done(rs: list) -> bool:
        credited = {c["order_id"] for c in decode_all(rs, topics.CREDITS)}
        return {"o-after", "o-at-limit"} <= credited and len(decode_all(rs, topics.DLQ)) >= 4

    records = read_until(settings, [topics.DLQ, topics.CREDITS], done, workers=[worker])
    credits = Counter(c["order_id"] for c in decode_all(records, topics.CREDITS))
    assert credits == {"o-after": 1, "o-at-limit": 1}
    letters = decode_all(records, topics.DLQ)
    by_source = Counter(d["source_topic"] for d in letters)
    # One dead letter per refused record, though both the order and risk stages read orders.
    assert by_source == {topics.ORDERS: 2, topics.WEBHOOKS: 1, topics.SETTLEMENTS: 1}, letters
    assert Counter(d["key"] for d in letters if d["source_topic"] == topics.ORDERS) == {
        b"o-big": 1, b"o-bonus": 1}
    assert all(f"above {LIMIT} (TOPUP_MAX_AMOUNT_MINOR)" in d["error"] for d in letters)
    assert {d["error_kind"] for d in letters if d["source_topic"] != topics.SETTLEMENTS} == {
        "SCHEMA_INVALID"}
    assert worker.process.poll() is None
