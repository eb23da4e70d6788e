"""Orders and money end to end: intake, the order stage, the ledger and balances."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from streams import topics
from streams.domain.common.ids import entry_id
from streams.domain.common.payments import PaymentKind
from tests.builders import NOW_MS, order_event, payment_event
from tests.integration.flow import Flow, partition_of
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, http, read_until, settings_from, wait_for_http

MINUTE = 60_000
OUTPUTS = [topics.CREDITS, topics.ORDER_STATUS, topics.ALERTS, topics.AUDIT, topics.REVIEW_CASES]


@pytest.fixture
def money_env(kafka_env):
    return {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS), "TOPUP_ORPHAN_HOLD_S": "60"}


def statuses_of(records, order_id: str) -> list[tuple[int, str]]:
    return sorted(
        (s["version"], s["status"])
        for s in decode_all(records, topics.ORDER_STATUS) if s["order_id"] == order_id
    )


def final_status(records, order_id: str) -> str | None:
    history = statuses_of(records, order_id)
    return history[-1][1] if history else None


def test_the_seed_scenarios_end_to_end(money_env, workers):
    settings = settings_from(money_env)
    flow = Flow(settings)
    # 12.1: the same callback twice, and re-sent with a fresh signature: one credit.
    flow.order(order_event("o-twice", promo_id="welcome", promo_bonus_minor=100), "corr-twice")
    paid = payment_event("o-twice")
    flow.callback(paid)
    flow.callback(paid)
    flow.callback(paid, received_at=NOW_MS + MINUTE, secret=HMAC_SECRETS[1])
    # Amount 100 ordered, 98 paid: no credit, held for review.
    flow.order(order_event("o-short", amount_minor=100))
    flow.callback(payment_event("o-short", amount=98))
    # Payment before its order: held, credited once the order arrives.
    flow.callback(payment_event("o-early", at=NOW_MS + MINUTE))
    flow.order(order_event("o-early", at=NOW_MS + 2 * MINUTE))
    # An orphan: nothing else for its order; a later order on its partition moves time on.
    flow.callback(payment_event("o-orphan"))
    later = next(f"o-later-{i}" for i in range(100)
                 if partition_of(f"o-later-{i}") == partition_of("o-orphan"))
    flow.order(order_event(later, at=NOW_MS + 5 * MINUTE))
    flow.flush()

    worker = workers.start(**money_env)
    records = read_until(
        settings, OUTPUTS,
        lambda rs: final_status(rs, "o-twice") == "CREDITED"
        and final_status(rs, "o-early") == "CREDITED"
        and final_status(rs, "o-short") == "ON_HOLD"
        and any(a["kind"] == "ORPHAN_PAYMENT" for a in decode_all(rs, topics.ALERTS)),
        workers=[worker],
    )
    credits = decode_all(records, topics.CREDITS)
    by_order = Counter(c["order_id"] for c in credits)
    assert by_order == {"o-twice": 1, "o-early": 1}
    twice = next(c for c in credits if c["order_id"] == "o-twice")
    assert twice["entry_id"] == entry_id("o-twice", "CREDIT", "txn-o-twice", None)
    assert (twice["op"], twice["amount_minor"], twice["bonus_minor"]) == ("CREDIT", 1000, 100)
    assert (twice["account_id"], twice["reason"]) == ("acct-o-twice", "PAYMENT_CONFIRMED")
    credit_record = next(r for r in records if r.topic == topics.CREDITS
                         and r.key == b"acct-o-twice")
    assert credit_record.headers["correlation_id"] == b"corr-twice"

    versions = [v for v, _ in statuses_of(records, "o-twice")]
    assert versions == list(range(1, len(versions) + 1))

    alerts = decode_all(records, topics.ALERTS)
    assert {a["kind"] for a in alerts if a["order_id"] == "o-short"} == {"AMOUNT_MISMATCH"}
    [orphan] = [a for a in alerts if a["kind"] == "ORPHAN_PAYMENT"]
    assert orphan["order_id"] == "o-orphan"
    [case] = [c for c in decode_all(records, topics.REVIEW_CASES) if c["order_id"] == "o-short"]
    assert case["evidence"]
    audits = decode_all(records, topics.AUDIT)
    short_audit = [a for a in audits if a["subject"] == "o-short"]
    assert any("98" in json.dumps(a["inputs"]) and "100" in json.dumps(a["inputs"])
               for a in short_audit)
    assert {a["subject"] for a in audits if a["action"] == "CREDIT"} >= {"o-twice", "o-early"}


def test_freezes_hold_credits_and_release_each_exactly_once(money_env, workers):
    settings = settings_from(money_env)
    flow = Flow(settings)
    flow.control("FREEZE_CREDITS", "global", "cmd-1", NOW_MS)
    flow.control("FREEZE_CREDITS", "merchant:merchant-other", "cmd-2", NOW_MS)
    flow.flush()
    worker = workers.start(**money_env)
    # The broadcast must reach every partition before the payments it should stop.
    read_until(settings, [topics.AUDIT], lambda rs: len(rs) >= 2, workers=[worker])

    orders = [f"o-frozen-{i}" for i in range(8)]
    others = [f"o-other-{i}" for i in range(4)]
    for order_id in orders:
        flow.order(order_event(order_id, at=NOW_MS + MINUTE))
        flow.callback(payment_event(order_id, at=NOW_MS + MINUTE))
    for order_id in others:
        flow.order(order_event(order_id, at=NOW_MS + MINUTE, merchant_id="merchant-other"))
        flow.callback(payment_event(order_id, at=NOW_MS + MINUTE, merchant_id="merchant-other"))
    flow.flush()
    held = read_until(
        settings, OUTPUTS,
        lambda rs: all(final_status(rs, o) == "ON_HOLD" for o in orders + others),
        workers=[worker],
    )
    assert decode_all(held, topics.CREDITS) == []

    flow.control("UNFREEZE_CREDITS", "global", "cmd-3", NOW_MS + 2 * MINUTE)
    flow.flush()
    released = read_until(
        settings, OUTPUTS,
        lambda rs: all(final_status(rs, o) == "CREDITED" for o in orders),
        workers=[worker],
    )
    # The merchant freeze still holds its orders.
    assert all(final_status(released, o) == "ON_HOLD" for o in others)
    flow.control("UNFREEZE_CREDITS", "merchant:merchant-other", "cmd-4", NOW_MS + 3 * MINUTE)
    flow.control("UNFREEZE_CREDITS", "global", "cmd-5", NOW_MS + 3 * MINUTE)  # a no-op
    flow.flush()
    final = read_until(
        settings, OUTPUTS,
        lambda rs: all(final_status(rs, o) == "CREDITED" for o in orders + others),
        workers=[worker],
    )
    credits = Counter(c["order_id"] for c in decode_all(final, topics.CREDITS))
    assert credits == dict.fromkeys(orders + others, 1)


def test_refund_debits_once_and_the_balance_follows_the_ledger(money_env, workers):
    settings = settings_from(money_env)
    flow = Flow(settings)
    flow.order(order_event("o-refund", promo_bonus_minor=50, promo_id="p1"))
    flow.callback(payment_event("o-refund"))
    flow.flush()
    worker = workers.start(**money_env)
    read_until(settings, OUTPUTS, lambda rs: final_status(rs, "o-refund") == "CREDITED",
               workers=[worker])

    # The order service asks for a refund once it saw the credit; the provider's answer
    # may still be processed before the request (another topic): it waits for it.
    refund = payment_event("o-refund", PaymentKind.REFUND_SUCCEEDED, amount=400,
                           at=NOW_MS + 2 * MINUTE, refund_id="rf-1")
    flow.callback(refund)
    flow.callback(refund)
    flow.order(order_event("o-refund", "REFUND_REQUESTED", at=NOW_MS + MINUTE,
                           amount_minor=400, refund_id="rf-1"))
    flow.flush()
    records = read_until(
        settings, OUTPUTS,
        lambda rs: sum(c["op"] == "DEBIT" for c in decode_all(rs, topics.CREDITS)) >= 1,
        workers=[worker],
    )
    ops = sorted((c["op"], c["amount_minor"]) for c in decode_all(records, topics.CREDITS))
    assert ops == [("CREDIT", 1000), ("DEBIT", 400)]
    assert final_status(records, "o-refund") == "CREDITED"  # partly refunded

    wait_for_http(worker)
    url = f"http://127.0.0.1:{worker.web_port}/accounts/acct-o-refund/balance"
    expected = {"account_id": "acct-o-refund", "balances_minor": {"USD": 650}}
    deadline = time.monotonic() + 30
    reply: tuple = ()
    while reply != (200, expected) and time.monotonic() < deadline:
        status, body = http("GET", url)
        reply = (status, json.loads(body) if status == 200 else body)
        time.sleep(0.2)  # polling the endpoint until the balance stage caught up
    assert reply == (200, expected)
