"""Absurd event times are refused at the edge, once, and cannot move a partition's clock."""

from __future__ import annotations

import time
from collections import Counter

from streams import topics
from tests.builders import NOW_MS, order_event, payment_event
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.integration.risk_env import latest, risk_env
from tests.kafka_harness import decode_all, read_until, settings_from

MINUTE = 60_000
YEAR_3000_MS = 32_503_680_000_000
INT64_MAX = 2**63 - 1


def test_far_future_orders_are_dead_lettered_once_and_the_farm_is_still_blocked(
        kafka_env, workers, tmp_path):
    env = risk_env(kafka_env, tmp_path)
    settings = settings_from(env)
    worker = workers.start("time", **env)
    flow = Flow(settings)
    sequence = [
        order_event("o-farm-1", at=NOW_MS + MINUTE, device_id="dev-farm"),
        # Year 3000 on the farm's device: once, it closed the device's window for good.
        order_event("o-future", at=YEAR_3000_MS, device_id="dev-farm"),
        order_event("o-max", at=INT64_MAX),
        order_event("o-farm-2", at=NOW_MS + 2 * MINUTE, device_id="dev-farm"),
        order_event("o-farm-3", at=NOW_MS + 3 * MINUTE, device_id="dev-farm"),
        order_event("o-farm-4", at=NOW_MS + 4 * MINUTE, device_id="dev-farm"),
    ]
    for order in sequence:
        flow.order(order)
        flow.flush()
        order_id = order["order_id"]
        if order_id.startswith("o-farm"):
            read_until(settings, [topics.RISK_DECISIONS],
                       lambda rs, oid=order_id: oid in latest(rs, topics.RISK_DECISIONS,
                                                               "order_id"),
                       workers=[worker])
    # Afterwards an ordinary order and its payment: credited once, at a sane time.
    flow.order(order_event("o-after", at=NOW_MS + 10 * MINUTE))
    flow.callback(payment_event("o-after", at=NOW_MS + 11 * MINUTE))
    flow.flush()
    records = read_until(
        settings, [topics.RISK_DECISIONS, topics.DLQ, topics.CREDITS, topics.ALERTS],
        lambda rs: any(c["order_id"] == "o-after" for c in decode_all(rs, topics.CREDITS)),
        workers=[worker])

    decisions = latest(records, topics.RISK_DECISIONS, "order_id")
    assert {o: d["decision"] for o, d in decisions.items() if o.startswith("o-farm")} == {
        "o-farm-1": "ALLOW", "o-farm-2": "ALLOW", "o-farm-3": "BLOCK", "o-farm-4": "BLOCK"}
    assert "o-future" not in decisions and "o-max" not in decisions
    letters = decode_all(records, topics.DLQ)
    # One dead letter per refused record (the risk stage refuses it silently).
    assert Counter(d["key"] for d in letters) == {b"o-future": 1, b"o-max": 1}
    assert {d["error_kind"] for d in letters} == {"SCHEMA_INVALID"}
    assert all("ahead of the record's broker timestamp" in d["error"] for d in letters)
    [credit] = [c for c in decode_all(records, topics.CREDITS) if c["order_id"] == "o-after"]
    assert credit["created_at"] < NOW_MS + 60 * MINUTE
    assert not [a for a in decode_all(records, topics.ALERTS) if a["kind"] == "ORPHAN_PAYMENT"]


def test_with_an_age_bound_back_dated_orders_are_dead_lettered_once(kafka_env, workers):
    settings = settings_from(kafka_env)
    worker = workers.start("age", TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS),
                           TOPUP_MAX_EVENT_AGE_S=str(24 * 3600))
    # Relative to now: the broker stamps each record with the time it is produced.
    now_ms = int(time.time() * 1000)
    flow = Flow(settings)
    flow.order(order_event("o-old", at=now_ms - 2 * 24 * 3600 * 1000))
    flow.order(order_event("o-1970", at=0))
    flow.order(order_event("o-now", at=now_ms))
    flow.callback(payment_event("o-now", at=now_ms))
    flow.flush()
    records = read_until(
        settings, [topics.DLQ, topics.CREDITS],
        lambda rs: any(c["order_id"] == "o-now" for c in decode_all(rs, topics.CREDITS))
        and len(decode_all(rs, topics.DLQ)) >= 2,
        workers=[worker])
    letters = decode_all(records, topics.DLQ)
    assert Counter(d["key"] for d in letters) == {b"o-old": 1, b"o-1970": 1}
    assert {d["error_kind"] for d in letters} == {"SCHEMA_INVALID"}
    assert all("TOPUP_MAX_EVENT_AGE_S" in d["error"] for d in letters)
    assert Counter(c["order_id"] for c in decode_all(records, topics.CREDITS)) == {"o-now": 1}
