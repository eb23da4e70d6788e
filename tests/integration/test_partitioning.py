"""Producers that do not partition as we do, and time that moves with no traffic.

Orders, callbacks and settlement files come from plain confluent-kafka producers with
their defaults (librdkafka: CRC32 `consistent_random`), with `random`, or with each order
written to an explicitly wrong partition. Money must come out the same.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from streams import topics
from streams.admin import admin_client
from streams.stages.orders import ORDER_STATE
from tests.builders import NOW_MS, batch_closed, order_event, payment_event, settlement_line
from tests.integration.flow import Flow, partition_of
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, http, read_until, settings_from, wait_for_http

MINUTE, HOUR = 60_000, 3_600_000
OUTPUTS = [topics.CREDITS, topics.ORDER_STATUS, topics.ALERTS, topics.AUDIT,
           topics.RECON_BREAKS]
PLAIN_PAID = [f"o-plain-{i}" for i in range(8)]


class PlainFlow(Flow):
    """Flow's records, written by a producer as another team would configure it."""

    def __init__(self, settings: Any, wrong_partition: bool = False, **config: str) -> None:
        super().__init__(settings)
        self.producer = Producer({"bootstrap.servers": settings.bootstrap_servers, **config})
        self.wrong_partition, self.partitions = wrong_partition, settings.partitions

    def order(self, record: dict, correlation_id: str | None = None) -> None:
        if not self.wrong_partition:
            super().order(record, correlation_id)
            return
        wrong = (partition_of(record["order_id"], self.partitions) + 1) % self.partitions
        headers = [("correlation_id", correlation_id.encode())] if correlation_id else None
        self.producer.produce(topics.ORDERS, key=record["order_id"], partition=wrong,
                              value=self.catalog.encode("OrderEvent", record), headers=headers)


def _statuses(records: list) -> dict[str, str]:
    latest: dict[str, tuple[int, str]] = {}
    for status in decode_all(records, topics.ORDER_STATUS):
        seen = latest.get(status["order_id"], (0, ""))
        if status["version"] > seen[0]:
            latest[status["order_id"]] = (status["version"], status["status"])
    return {order_id: status for order_id, (_, status) in latest.items()}


def _balance(worker: Any, account: str) -> dict:
    status, body = http("GET", f"http://127.0.0.1:{worker.web_port}/accounts/{account}/balance")
    return json.loads(body) if status == 200 else {}


@pytest.mark.parametrize("producer_kind", ["consistent_random", "random", "wrong_partition"])
def test_the_seed_scenarios_whatever_the_producers_partitioner(kafka_env, workers,
                                                                producer_kind):
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS)}
    settings = settings_from(env)
    if producer_kind == "wrong_partition":
        flow = PlainFlow(settings, wrong_partition=True)
    elif producer_kind == "random":
        flow = PlainFlow(settings, partitioner="random")
    else:
        flow = PlainFlow(settings)  # librdkafka's default: consistent_random
    # The same callback twice: one credit.
    flow.order(order_event("o-twice"), "corr-twice")
    flow.callback(payment_event("o-twice"))
    flow.callback(payment_event("o-twice"))
    # Amount 100 ordered, 98 paid: held.
    flow.order(order_event("o-short", amount_minor=100))
    flow.callback(payment_event("o-short", amount=98))
    # Payment before its order: credited once the order arrives.
    flow.callback(payment_event("o-early", at=NOW_MS + MINUTE))
    flow.order(order_event("o-early", at=NOW_MS + 2 * MINUTE))
    # Plain paid orders, so that most land where murmur2 would not put them.
    for order_id in PLAIN_PAID:
        flow.order(order_event(order_id))
        flow.callback(payment_event(order_id))
    # The lost callback: only the provider's settlement proves the payment.
    flow.order(order_event("o-lost"))
    flow.flush()
    worker = workers.start(**env)
    paid = ["o-twice", "o-early", *PLAIN_PAID]
    read_until(settings, [topics.ORDER_STATUS],
               lambda rs: all(_statuses(rs).get(o) == "CREDITED" for o in paid),
               workers=[worker])
    settled = NOW_MS + HOUR
    flow.settlement(settlement_line("r-lost", "b-1", "o-lost", 1000, settled))
    flow.settlement(batch_closed("b-1", lines=1, total=1000, at=NOW_MS + 3 * HOUR,
                                 covers_until=settled))
    flow.flush()
    paid.append("o-lost")
    records = read_until(
        settings, OUTPUTS,
        lambda rs: all(_statuses(rs).get(o) == "CREDITED" for o in paid)
        and _statuses(rs).get("o-short") == "ON_HOLD",
        workers=[worker],
    )
    statuses = _statuses(records)
    assert {o: statuses.get(o) for o in paid} == {o: "CREDITED" for o in paid}
    assert statuses["o-short"] == "ON_HOLD"
    credits = decode_all(records, topics.CREDITS)
    assert Counter(c["order_id"] for c in credits) == Counter(paid)
    alerts = decode_all(records, topics.ALERTS)
    assert {a["kind"] for a in alerts if a["order_id"] == "o-short"} == {"AMOUNT_MISMATCH"}
    assert not [a for a in alerts if a["kind"] == "ORPHAN_PAYMENT"]
    breaks = decode_all(records, topics.RECON_BREAKS)
    # (The batch's watermark also finds the paid orders it lacks lines for: not ours here.)
    assert [(b["category"], b["action"]) for b in breaks if b["order_id"] == "o-lost"] == [
        ("MISSING_CREDIT", "AUTO_CORRECTED")
    ]
    # The misplaced orders were noticed, once for the topic in this hour, naming why.
    misplaced = [a for a in alerts if a["kind"] == "INPUT_MISPARTITIONED"]
    assert len(misplaced) == 1
    assert misplaced[0]["severity"] == "WARN"
    assert misplaced[0]["details"]["topic"] == topics.ORDERS
    assert "murmur2" in misplaced[0]["details"]["cause"]
    ordered = next(r for r in records if r.topic == topics.CREDITS and r.key == b"acct-o-twice")
    assert ordered.headers["correlation_id"] == b"corr-twice"

    wait_for_http(worker)
    deadline = time.monotonic() + 30
    balances: dict[str, dict] = {}
    expected = {o: {"account_id": f"acct-{o}", "balances_minor": {"USD": 1000}} for o in paid}
    while balances != expected and time.monotonic() < deadline:
        balances = {o: _balance(worker, f"acct-{o}") for o in paid}
    assert balances == expected
    assert _balance(worker, "acct-o-short").get("balances_minor", {}) in ({}, {"USD": 0})


def test_an_orphan_payment_alerts_within_the_bound_with_no_later_traffic(kafka_env, workers):
    hold_s, idle_s = 3, 1
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS),
           "TOPUP_ORPHAN_HOLD_S": str(hold_s), "TOPUP_IDLE_ADVANCE_S": str(idle_s)}
    settings = settings_from(env)
    worker = workers.start(**env)
    flow = PlainFlow(settings)
    # Event time is the wall clock's here, as a live provider's callback would carry.
    now = int(time.time() * 1000)
    flow.callback(payment_event("o-quiet-orphan", at=now))
    flow.flush()
    held = read_until(
        settings, [topics.AUDIT],
        lambda rs: any(a["subject"] == "o-quiet-orphan" for a in decode_all(rs, topics.AUDIT)),
        workers=[worker],
    )
    assert held
    audited = time.monotonic()
    records = read_until(
        settings, [topics.ALERTS],
        lambda rs: any(a["kind"] == "ORPHAN_PAYMENT" for a in decode_all(rs, topics.ALERTS)),
        workers=[worker],
    )
    waited = time.monotonic() - audited
    [orphan] = [a for a in decode_all(records, topics.ALERTS) if a["kind"] == "ORPHAN_PAYMENT"]
    assert orphan["order_id"] == "o-quiet-orphan"
    # The documented bound (topology.md): hold + idle advance + one poll and transaction
    # after the last input; the slack covers a loaded test machine and the reader's polls.
    assert waited < hold_s + idle_s + 15


def test_a_settled_payment_with_a_lost_callback_is_credited_with_no_later_traffic(
    kafka_env, workers
):
    grace_s, idle_s = 3, 1
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS),
           "TOPUP_RECON_MISSING_CREDIT_GRACE_S": str(grace_s),
           "TOPUP_IDLE_ADVANCE_S": str(idle_s)}
    settings = settings_from(env)
    worker = workers.start(**env)
    flow = PlainFlow(settings)
    now = int(time.time() * 1000)
    flow.order(order_event("o-quiet-lost", at=now))
    flow.flush()
    read_until(settings, [topics.ORDER_STATUS],
               lambda rs: _statuses(rs).get("o-quiet-lost") == "CREATED", workers=[worker])
    flow.settlement(settlement_line("r-quiet", "b-quiet", "o-quiet-lost", 1000, now))
    flow.flush()
    settled = time.monotonic()
    records = read_until(
        settings, [topics.ORDER_STATUS, topics.RECON_BREAKS, topics.CREDITS],
        lambda rs: _statuses(rs).get("o-quiet-lost") == "CREDITED"
        and bool(decode_all(rs, topics.RECON_BREAKS)),
        workers=[worker],
    )
    waited = time.monotonic() - settled
    breaks = decode_all(records, topics.RECON_BREAKS)
    assert [(b["order_id"], b["category"], b["action"]) for b in breaks] == [
        ("o-quiet-lost", "MISSING_CREDIT", "AUTO_CORRECTED")
    ]
    assert [c["order_id"] for c in decode_all(records, topics.CREDITS)] == ["o-quiet-lost"]
    # The bound (topology.md): the grace + the idle advance + a poll and two transactions
    # after the line was consumed; the slack covers a loaded machine and the reader.
    assert waited < grace_s + idle_s + 15


def test_a_worker_refuses_a_topic_with_another_partition_count(kafka_env, workers):
    settings = settings_from(kafka_env)
    # The order store's changelog, made by hand with 3 partitions before the first start.
    changelog = ORDER_STATE.changelog(settings.app_id)
    admin = admin_client(settings)  # kept: the future dies with its client
    [future] = admin.create_topics([NewTopic(changelog, 3, 1)]).values()
    future.result()
    worker = workers.start(**kafka_env)
    code = worker.process.wait(timeout=90)
    log = worker.log()
    assert code == 2, log
    assert f"{changelog} has 3" in log
    assert "must all have 4 partitions" in log
