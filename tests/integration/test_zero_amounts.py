"""An amount of 0 where money must move is refused where it enters, once each; a failed
payment may say 0 and still fails its order."""

from __future__ import annotations

from collections import Counter

from streams import topics
from streams.domain.common.payments import PaymentKind
from tests.builders import NOW_MS, order_event, payment_event, settlement_line
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from


def _status(records: list, order_id: str) -> str | None:
    history = sorted((s["version"], s["status"])
                     for s in decode_all(records, topics.ORDER_STATUS)
                     if s["order_id"] == order_id)
    return history[-1][1] if history else None


def test_zero_amounts_are_dead_lettered_once(kafka_env, workers):
    settings = settings_from(kafka_env)
    worker = workers.start(TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS))
    flow = Flow(settings)
    flow.order(order_event("o-zero", amount_minor=0))
    flow.order(order_event("o-pay-zero", amount_minor=1000))
    flow.callback(payment_event("o-pay-zero", amount=0))
    flow.order(order_event("o-fail-zero", amount_minor=1000))
    flow.callback(payment_event("o-fail-zero", PaymentKind.PAYMENT_FAILED, amount=0))
    flow.settlement(settlement_line("r-zero", "batch-zero", "o-pay-zero", 0, NOW_MS))
    flow.flush()
    # Afterwards the zero payment's order is paid for real, and credited once.
    flow.callback(payment_event("o-pay-zero", amount=1000, event_id="evt-o-pay-zero-real"))
    flow.flush()

    def done(rs: list) -> bool:
        credited = {c["order_id"] for c in decode_all(rs, topics.CREDITS)}
        return ("o-pay-zero" in credited and _status(rs, "o-fail-zero") == "FAILED"
                and len(decode_all(rs, topics.DLQ)) >= 3)

    records = read_until(settings, [topics.DLQ, topics.CREDITS, topics.ORDER_STATUS], done,
                         workers=[worker])
    credits = decode_all(records, topics.CREDITS)
    assert [(c["order_id"], c["amount_minor"]) for c in credits] == [("o-pay-zero", 1000)]
    letters = decode_all(records, topics.DLQ)
    # One dead letter per refused record, though both the order and risk stages read orders.
    assert Counter(d["source_topic"] for d in letters) == {
        topics.ORDERS: 1, topics.WEBHOOKS: 1, topics.SETTLEMENTS: 1}, letters
    by_topic = {d["source_topic"]: d for d in letters}
    assert by_topic[topics.ORDERS]["key"] == b"o-zero"
    assert "CREATED needs a positive amount_minor" in by_topic[topics.ORDERS]["error"]
    assert by_topic[topics.WEBHOOKS]["error_kind"] == "SCHEMA_INVALID"
    assert ("amount_minor is 0: a PAYMENT_SUCCEEDED must move money"
            in by_topic[topics.WEBHOOKS]["error"])
    assert by_topic[topics.SETTLEMENTS]["error_kind"] == "BAD_PAYLOAD"
    assert "amount_minor is 0: a PAYMENT line must move money" in (
        by_topic[topics.SETTLEMENTS]["error"])
    assert worker.process.poll() is None
