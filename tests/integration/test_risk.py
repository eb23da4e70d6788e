"""Risk end to end: decisions from velocity across partitions, and the credits they gate."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from bench.harness import recreate_topics
from streams import topics
from tests.builders import NOW_MS, order_event, payment_event
from tests.integration.flow import Flow, partition_of
from tests.integration.risk_env import latest, risk_env
from tests.kafka_harness import decode_all, read_until, settings_from, wait_for_http

MINUTE = 60_000
def _statuses(records) -> dict[str, str]:
    best: dict[str, tuple[int, str]] = {}
    for status in decode_all(records, topics.ORDER_STATUS):
        if status["version"] > best.get(status["order_id"], (0, ""))[0]:
            best[status["order_id"]] = (status["version"], status["status"])
    return {order_id: status for order_id, (_, status) in best.items()}


@pytest.mark.parametrize("partitioner", ["murmur2_random", "consistent_random"])
def test_decisions_gate_credits_until_a_human_or_the_buyer_answers(
    kafka_env, workers, tmp_path, partitioner
):
    """Also with orders from librdkafka's default partitioner: the device farm is still
    blocked once its orders are moved to their keys' partitions."""
    env = risk_env(kafka_env, tmp_path)
    settings = settings_from(env)
    worker = workers.start("risk", **env)
    flow = Flow(settings)
    flow.producer = Producer({"bootstrap.servers": settings.bootstrap_servers,
                              "partitioner": partitioner})
    orders = {
        "o-allow": order_event("o-allow", at=NOW_MS, device_id="dev-home"),
        "o-farm-1": order_event("o-farm-1", at=NOW_MS + MINUTE, device_id="dev-farm"),
        "o-farm-2": order_event("o-farm-2", at=NOW_MS + 2 * MINUTE, device_id="dev-farm"),
        "o-farm-3": order_event("o-farm-3", at=NOW_MS + 3 * MINUTE, device_id="dev-farm"),
        "o-step-up": order_event("o-step-up", at=NOW_MS + 4 * MINUTE, amount_minor=200_000),
        "o-review": order_event("o-review", at=NOW_MS + 5 * MINUTE, amount_minor=600_000),
    }
    # The farm's orders arrive minutes apart, as a ring's do: each after the previous one
    # is decided, so the device sees them in their order (velocity answers on arrival).
    for order_id, order in orders.items():
        flow.order(order)
        flow.flush()
        if order_id.startswith("o-farm"):
            read_until(settings, [topics.RISK_DECISIONS],
                       lambda rs, oid=order_id: oid in latest(rs, topics.RISK_DECISIONS,
                                                               "order_id"),
                       workers=[worker])
    decided = read_until(settings, [topics.RISK_DECISIONS, topics.AUDIT],
                         lambda rs: len(latest(rs, topics.RISK_DECISIONS, "order_id")) == 6,
                         workers=[worker])
    decisions = latest(decided, topics.RISK_DECISIONS, "order_id")
    assert {o: (d["decision"], d["reasons"]) for o, d in decisions.items()} == {
        "o-allow": ("ALLOW", []),
        "o-farm-1": ("ALLOW", []),
        "o-farm-2": ("ALLOW", []),
        "o-farm-3": ("BLOCK", ["device_farm"]),
        "o-step-up": ("STEP_UP", ["large_amount"]),
        "o-review": ("REVIEW", ["very_large_amount"]),
    }
    assert {d["rules_version"].split("+")[0] for d in decisions.values()} == {"test-1"}
    audited = {a["subject"] for a in decode_all(decided, topics.AUDIT)
               if a["action"].startswith("RISK_")}
    assert audited == set(orders)

    for order_id, order in orders.items():
        flow.callback(payment_event(order_id, amount=order["amount_minor"],
                                    at=order["occurred_at"] + 1_000))
    flow.flush()
    paid = read_until(
        settings, [topics.ORDER_STATUS, topics.CREDITS, topics.ALERTS],
        lambda rs: _statuses(rs).get("o-review") == "ON_HOLD"
        and _statuses(rs).get("o-step-up") == "ON_HOLD"
        and _statuses(rs).get("o-farm-3") == "ON_HOLD"
        and _statuses(rs).get("o-allow") == "CREDITED",
        workers=[worker],
    )
    credited = {c["order_id"] for c in decode_all(paid, topics.CREDITS)}
    assert credited == {"o-allow", "o-farm-1", "o-farm-2"}
    blocked_alerts = [a for a in decode_all(paid, topics.ALERTS)
                      if a["kind"] == "PAID_WHILE_BLOCKED"]
    assert [a["order_id"] for a in blocked_alerts] == ["o-farm-3"]

    # The buyer completes the step-up; a reviewer approves the farm order, rejects the other.
    later = NOW_MS + 10 * MINUTE
    flow.order(order_event("o-step-up", "STEP_UP_COMPLETED", at=later))
    flow.order(order_event("o-farm-3", "REVIEW_APPROVED", at=later, actor="analyst@test"))
    flow.order(order_event("o-review", "REVIEW_REJECTED", at=later, actor="analyst@test"))
    flow.flush()
    final = read_until(
        settings, [topics.ORDER_STATUS, topics.CREDITS],
        lambda rs: _statuses(rs).get("o-step-up") == "CREDITED"
        and _statuses(rs).get("o-farm-3") == "CREDITED"
        and _statuses(rs).get("o-review") in ("FAILED", "CANCELED"),
        workers=[worker],
    )
    credits = [c["order_id"] for c in decode_all(final, topics.CREDITS)]
    assert sorted(credits) == sorted(["o-allow", "o-farm-1", "o-farm-2", "o-farm-3", "o-step-up"])


def _shared_population() -> list[dict]:
    """Users whose orders land on different partitions and share devices and ips."""
    orders = []
    at = NOW_MS
    for round_ in range(3):
        for user in range(4):
            order_id = f"o-pop-{user}-{round_}"
            at += 20_000
            orders.append(order_event(
                order_id, at=at, user_id=f"user-{user}", account_id=f"acct-{user}",
                device_id=f"dev-{user % 2}", ip="198.51.100.7" if user < 3 else "203.0.113.9",
            ))
    return orders


def _decide_one_by_one(settings, orders, workers_) -> dict[str, tuple]:
    """Each order is produced once the previous one is decided, so every dimension sees
    the attempts in event-time order whatever the partitioning."""
    flow = Flow(settings)
    decisions: dict[str, tuple] = {}
    for order in orders:
        flow.order(order)
        flow.flush()
        records = read_until(
            settings, [topics.RISK_DECISIONS],
            lambda rs, oid=order["order_id"]: oid in latest(rs, topics.RISK_DECISIONS,
                                                              "order_id"),
            workers=workers_,
        )
        decision = latest(records, topics.RISK_DECISIONS, "order_id")[order["order_id"]]
        decisions[order["order_id"]] = (decision["decision"], decision["score"],
                                        tuple(decision["reasons"]))
    return decisions


def test_four_partitions_and_two_workers_decide_as_one_partition_does(
    kafka_env, workers, tmp_path
):
    orders = _shared_population()
    assert len({partition_of(o["order_id"]) for o in orders}) == 4
    for user in range(4):
        mine = [o for o in orders if o["user_id"] == f"user-{user}"]
        assert len({partition_of(o["order_id"]) for o in mine}) > 1

    wide_env = risk_env(kafka_env, tmp_path)
    wide = [workers.start("wide-a", **wide_env), workers.start("wide-b", **wide_env)]
    for worker in wide:
        wait_for_http(worker)
    spread = _decide_one_by_one(settings_from(wide_env), orders, wide)
    for worker in wide:
        worker.stop()

    narrow_env = {**wide_env, "TOPUP_PARTITIONS": "1",
                  "TOPUP_APP_ID": wide_env["TOPUP_APP_ID"] + "-narrow"}
    recreate_topics(settings_from(narrow_env))
    narrow = [workers.start("narrow", **narrow_env)]
    single = _decide_one_by_one(settings_from(narrow_env), orders, narrow)

    assert spread == single
    # Not vacuous: shared devices and ips made some decisions other than a plain ALLOW.
    assert any(reasons for _, _, reasons in single.values())
