"""Every stage through streams.runtime.testing.TopologyTestDriver: the worker's own batch
code and RocksDB stores, without a broker."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.worker_process import RULES
from bench.workload import SECRET, order_and_callback
from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings, load_settings
from streams.domain.orders.inputs import OrderEvent
from streams.domain.recon.outputs import ReconOutcome
from streams.domain.risk.fanin import RiskOrder
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.runtime.context import Record, UndeclaredOutput
from streams.runtime.testing import TopologyTestDriver
from streams.topology import all_stages
from streams.worker_config import runtime_config
from tests.builders import batch_closed, settlement_line

CATALOG = default_catalog()


def _settings(state_dir: Path) -> Settings:
    return load_settings({"TOPUP_STATE_DIR": str(state_dir), "TOPUP_HMAC_SECRETS": SECRET,
                          "TOPUP_RISK_RULES": str(RULES)})


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[TopologyTestDriver]:
    settings = _settings(tmp_path)
    metrics = Metrics()
    stages = all_stages(settings, CATALOG, metrics)
    with TopologyTestDriver(runtime_config(settings), stages, CATALOG, metrics) as driver:
        yield driver


def pipe_order(driver: TopologyTestDriver, order: dict[str, Any]) -> None:
    driver.pipe(topics.ORDERS, order["order_id"].encode(), CATALOG.encode("OrderEvent", order),
                order["occurred_at"])


def pipe_callback(driver: TopologyTestDriver, callback: dict[str, Any]) -> None:
    driver.pipe(topics.WEBHOOKS, b"any", CATALOG.encode("WebhookDelivery", callback),
                callback["received_at"])


def test_an_order_and_its_callback_go_through_intake_risk_orders_and_balances(driver):
    order, callback = order_and_callback("t", 0, random.Random(1))
    pipe_order(driver, order)
    pipe_callback(driver, callback)

    [decision] = driver.read_values(topics.RISK_DECISIONS)
    assert decision["decision"] == "ALLOW"
    [payment] = driver.read_values(topics.PAYMENTS)
    assert payment["order_id"] == order["order_id"]
    [credit] = driver.read_values(topics.CREDITS)
    assert (credit["order_id"], credit["amount_minor"]) == (order["order_id"],
                                                            order["amount_minor"])
    assert [status["status"] for status in driver.read_values(topics.ORDER_STATUS)] == [
        "CREATED", "PAYMENT_CONFIRMED", "CREDITED"]
    assert driver.get("order-state", order["order_id"])["status"] == "CREDITED"
    assert driver.get("balances", order["account_id"]) == {"USD": order["amount_minor"]}


def test_an_orders_observations_go_one_record_per_partition_and_come_back_in_one(driver):
    order, _ = order_and_callback("t", 0, random.Random(1))
    pipe_order(driver, {**order, "payment_token": "tok-1"})
    records = driver.read_output(topics.RISK_OBSERVATIONS)
    groups = [topics.RISK_OBSERVATIONS_TOPIC.decode(send.value) for send in records]
    keys = {obs.routing_key for group in groups for obs in group}
    partitions = {partition_for(key.encode(), driver.partitions) for key in keys}
    # Five dimensions, each observed once, in as many records as partitions they hash to.
    assert len(keys) == 5 and sum(len(group) for group in groups) == 5
    assert len(records) == len(partitions) < 5
    for send, group in zip(records, groups, strict=True):
        assert {partition_for(obs.routing_key.encode(), driver.partitions)
                for obs in group} == {send.partition}
        assert partition_for(send.key, driver.partitions) == send.partition
    # The velocity partitions' answers, gathered in their batch, to the order's partition.
    [answers] = [topics.RISK_ANSWERS_TOPIC.decode(send.value)
                 for send in driver.read_output(topics.RISK_ANSWERS)]
    assert sorted(answer.dimension for answer in answers) == sorted(
        obs.dimension for group in groups for obs in group)
    [decision] = driver.read_values(topics.RISK_DECISIONS)
    assert decision["decision"] == "ALLOW"


def test_a_batchs_observations_and_answers_go_one_record_per_partition(driver):
    """Gathered over the batch (streams.runtime.gathered): whatever the orders in it, a
    velocity partition reads one record of observations, and an order's partition one of
    answers, and every order is still decided."""
    rng = random.Random(7)
    orders = [order_and_callback("t", n, rng)[0] for n in range(20)]
    offsets: Counter[int] = Counter()
    records = []
    for order in orders:
        key = order["order_id"].encode()
        partition = partition_for(key, driver.partitions)
        records.append(Record(topics.ORDERS, partition, offsets[partition], key,
                              CATALOG.encode("OrderEvent", order), order["occurred_at"], []))
        offsets[partition] += 1
    driver.pipe_records(records)

    expected = {(order["order_id"], dimension) for order in orders for dimension in
                RiskOrder.from_event(OrderEvent.from_record(order)).dimension_keys}
    for spec, routed_by in ((topics.RISK_OBSERVATIONS_TOPIC, lambda item: item.routing_key),
                            (topics.RISK_ANSWERS_TOPIC, lambda item: item.order_id)):
        sends = driver.read_output(spec.name)
        groups = [spec.decode(send.value) for send in sends]
        assert len({send.partition for send in sends}) == len(sends) < len(orders)
        for send, group in zip(sends, groups, strict=True):
            assert {partition_for(routed_by(item).encode(), driver.partitions)
                    for item in group} == {send.partition}
        assert sorted((item.order_id, item.dimension) for group in groups
                      for item in group) == sorted(expected)
    assert len(driver.read_values(topics.RISK_DECISIONS)) == len(orders)


def test_a_callback_delivered_twice_is_passed_on_once_and_credited_once(driver):
    order, callback = order_and_callback("t", 1, random.Random(2))
    pipe_order(driver, order)
    pipe_callback(driver, callback)
    pipe_callback(driver, {**callback, "delivery_id": "a-second-delivery"})
    assert len(driver.read_output(topics.PAYMENTS)) == 1
    assert len(driver.read_output(topics.CREDITS)) == 1


def test_undecodable_bytes_are_dead_lettered_and_the_next_record_is_handled(driver):
    driver.pipe(topics.WEBHOOKS, b"k", b"not avro", 1_795_000_000_000)
    [dead] = driver.read_values(topics.DLQ)
    assert (dead["source_topic"], dead["error_kind"]) == (topics.WEBHOOKS, "UNDECODABLE")
    order, callback = order_and_callback("t", 2, random.Random(3))
    pipe_order(driver, order)
    pipe_callback(driver, callback)
    assert driver.count(topics.CREDITS) == 1


def test_a_credit_entry_read_twice_moves_the_balance_once(driver):
    order, callback = order_and_callback("t", 3, random.Random(4))
    pipe_order(driver, order)
    pipe_callback(driver, callback)
    [credit] = driver.read_output(topics.CREDITS)
    driver.pipe(topics.CREDITS, credit.key, credit.value, 1_795_000_001_000)
    assert driver.get("balances", order["account_id"]) == {"USD": order["amount_minor"]}


def test_an_order_stores_its_state_on_its_keys_partition_only(driver):
    order, _ = order_and_callback("t", 4, random.Random(5))
    pipe_order(driver, order)
    held = [partition for partition in range(driver.partitions)
            if order["order_id"] in driver.store("order-state", partition)]
    assert len(held) == 1


def test_a_global_credit_freeze_reaches_every_order_partition_and_holds_the_credit(driver):
    command = {"command_id": "cmd-1", "action": "FREEZE_CREDITS", "scope": "global",
               "reason": "test", "issued_by": "ops@test", "issued_at": 1_795_000_000_000}
    driver.pipe(topics.CONTROL, b"global", CATALOG.encode("ControlCommand", command),
                1_795_000_000_000)
    broadcast = driver.read_output(topics.ORDER_COMMANDS)
    assert sorted(send.partition for send in broadcast) == list(range(driver.partitions))
    [audit] = driver.read_values(topics.AUDIT)
    assert audit["action"] == "FREEZE_CREDITS"
    order, callback = order_and_callback("t", 5, random.Random(6))
    pipe_order(driver, order)
    pipe_callback(driver, callback)
    assert driver.count(topics.PAYMENTS) == 1
    assert driver.count(topics.CREDITS) == 0


def pipe_settlement(driver: TopologyTestDriver, record: dict[str, Any]) -> None:
    # One key for a whole file keeps its records in order, as an importer would.
    driver.pipe(topics.SETTLEMENTS, b"settlement-file",
                CATALOG.encode("SettlementRecord", record), record["settled_at"])


def test_a_batch_whose_lines_miss_its_closing_total_raises_a_totals_alert(driver):
    at = 1_795_000_000_000
    pipe_settlement(driver, settlement_line("r1", "b1", "o-1", 1000, at))
    pipe_settlement(driver, settlement_line("r2", "b1", "o-2", 1000, at))
    pipe_settlement(driver, batch_closed("b1", 2, 3000, at + 1, None))
    assert driver.count(topics.RECON_INPUTS) >= 2
    assert len(driver.read_output(topics.SETTLEMENT_BATCHES)) == 3
    # Judged once the close's grace (30 minutes) has passed: the runtime's tick for the
    # quiet partition brings it.
    assert driver.count(topics.ALERTS) == 0
    driver.tick(partition_for(b"b1", driver.partitions), 31 * 60_000, at + 31 * 60_000)
    alerts = [alert["kind"] for alert in driver.read_values(topics.ALERTS)]
    assert alerts == ["BATCH_TOTALS_MISMATCH"]


def test_a_settled_credit_matches_and_a_settled_unknown_order_breaks_after_its_grace(driver):
    order, callback = order_and_callback("t", 6, random.Random(7))
    pipe_order(driver, order)
    pipe_callback(driver, callback)
    at = order["occurred_at"] + 3_600_000
    pipe_settlement(driver, settlement_line("r1", "b1", order["order_id"],
                                            order["amount_minor"], at))
    pipe_settlement(driver, settlement_line("r2", "b1", "ghost-order", 700, at))
    pipe_settlement(driver, batch_closed("b1", 2, order["amount_minor"] + 700, at + 1, at))
    [matched] = driver.read_values(topics.RECON_OUTCOMES)
    assert (matched["data"]["order_id"], matched["data"]["category"]) == (order["order_id"],
                                                                          None)
    assert driver.count(topics.RECON_BREAKS) == 0
    for partition in range(driver.partitions):
        driver.tick(partition, 3 * 3_600_000, at + 3 * 3_600_000)
    [broken] = driver.read_values(topics.RECON_BREAKS)
    assert (broken["order_id"], broken["category"]) == ("ghost-order", "MISSING_CREDIT")


def test_a_stage_sending_where_it_did_not_declare_fails_the_test_not_a_dead_letter(
    tmp_path, driver
):
    settings = _settings(tmp_path / "undeclared")
    metrics = Metrics()
    stages = [dataclasses.replace(stage, outputs=()) if stage.name == "intake" else stage
              for stage in all_stages(settings, CATALOG, metrics)]
    _, callback = order_and_callback("t", 7, random.Random(8))
    undeclared = TopologyTestDriver(runtime_config(settings), stages, CATALOG, metrics)
    with undeclared, pytest.raises(UndeclaredOutput, match=r"topup\.internal\.payments"):
        pipe_callback(undeclared, callback)


def test_an_hour_with_half_its_decisions_broken_raises_a_mismatch_rate_alert_once_judged(
    driver
):
    at = 1_795_000_000_000
    for index in range(40):
        outcome = {"order_id": f"o-{index}", "provider": "hmac", "decided_at": at + index,
                   "category": "MISSING_CREDIT" if index % 2 else None}
        driver.pipe(topics.RECON_OUTCOMES, b"hmac",
                    topics.RECON_OUTCOMES_TOPIC.encode(ReconOutcome.from_dict(outcome)),
                    at + index)
    assert driver.count(topics.ALERTS) == 0
    driver.tick(partition_for(b"hmac", driver.partitions), 3 * 3_600_000, at + 3 * 3_600_000)
    [alert] = driver.read_values(topics.ALERTS)
    assert (alert["kind"], alert["details"]["breaks"]) == ("MISMATCH_RATE_HIGH", "20")
