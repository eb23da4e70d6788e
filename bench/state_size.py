"""State kept per order, measured: every store's keys and bytes after N paid orders, and
again once event time has passed every retention (topology.md "State bounds").

The orders, their signed callbacks and the provider's settlement files (a line per
payment, a batch closed every 1,000 orders) are piped through every stage in this process
(streams.runtime.testing.TopologyTestDriver: the worker's own batch code and RocksDB
stores, no Kafka), one order a second of event time, followed by a quiet day (the
runtime's ticks). Then event time jumps past the
longest retention: a tenth as many later orders (their own users, devices and ips) arrive,
and each partition gets the runtime's ticks until no store shrinks any more. What is left
of the first orders is what the bounds keep for good (one balance row per account, dedup
ids until RocksDB's TTL reclaims them); the later orders' own state is not counted. Bytes are
the stores' keys and values as written (before RocksDB's compression), so they are what a
changelog carries and a restore reads. RSS is this process's growth while it holds the
state: at these sizes mostly RocksDB's memtables and the kept states, both bounded per
store partition, so it does not scale with the orders.
`python -m bench.state_size [--orders N]` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile

from bench.worker_process import RULES, memory_mib
from bench.workload import SECRET, callback_for, order_and_callback
from streams import topics
from streams.codecs import default_catalog
from streams.config import load_settings
from streams.metrics import Metrics
from streams.runtime.context import Record
from streams.runtime.testing import TopologyTestDriver
from streams.topology import all_stages
from streams.worker_config import runtime_config
from streams.workload import MERCHANT

DAY_MS = 86_400_000
MAX_TICK_ROUNDS = 10_000
TICK_MS = 3_600_000
BATCH_ORDERS = 1_000
LATER = "later"  # in every key of the later orders' state, so they can be told apart


def store_sizes(driver: TopologyTestDriver) -> dict[str, tuple[int, int]]:
    """Per store: (keys, bytes of keys and values) of the first orders' state, summed over
    its partitions; a key as stored, under its store's prefix in a family's store."""
    sizes: dict[str, tuple[int, int]] = {}
    marker = LATER.encode()
    for (name, _), view in sorted(driver.worker.views.items()):
        keys, size = sizes.get(name, (0, 0))
        prefix = len(view.prefix.encode())
        for key, value in view.raw_items():
            if marker not in key:
                keys, size = keys + 1, size + prefix + len(key) + len(value)
        sizes[name] = (keys, size)
    return sizes


def _inputs(run_id: str, orders: int, shift_ms: int = 0) -> list[Record]:
    """Orders, callbacks and settlement files; `shift_ms` later, and with their own
    dimension values, for the later orders."""
    catalog, rng = default_catalog(), random.Random(1)
    records: list[Record] = []

    def pipe(topic: str, key: str, schema: str, record: dict, at: int) -> None:
        records.append(Record(topic, 0, len(records), key.encode(),
                              catalog.encode(schema, record), at, ()))

    batch: list[dict] = []
    for index in range(orders):
        order, callback = order_and_callback(run_id, index, rng)
        if shift_ms:
            order = _later(order, shift_ms)
            callback = callback_for(order, f"{run_id}-d{index}")
        pipe(topics.ORDERS, order["order_id"], "OrderEvent", order, order["occurred_at"])
        pipe(topics.WEBHOOKS, order["order_id"], "WebhookDelivery", callback,
             callback["received_at"])
        batch.append(order)
        if len(batch) == BATCH_ORDERS or index == orders - 1:
            for line in _settlement_file(f"{run_id}-b{index}", batch):
                pipe(topics.SETTLEMENTS, f"hmac|{MERCHANT}", "SettlementRecord", line,
                     line["settled_at"])
            batch = []
    return records


def _later(order: dict, shift_ms: int) -> dict:
    return {**order, "occurred_at": order["occurred_at"] + shift_ms,
            **{field: f"{LATER}-{order[field]}" for field in
               ("account_id", "user_id", "device_id", "ip")}}


def _settlement_file(batch_id: str, orders: list[dict]) -> list[dict]:
    """A line per payment, then the file closed an hour after its last payment."""
    lines = [{
        "record_id": f"{batch_id}-{n}", "type": "LINE", "batch_id": batch_id,
        "provider": "hmac", "merchant_id": MERCHANT, "kind": "PAYMENT",
        "order_id": order["order_id"], "external_txn_id": f"txn-{order['order_id']}",
        "refund_id": None, "amount_minor": order["amount_minor"],
        "fee_minor": order["amount_minor"] // 100, "currency": order["currency"],
        "settled_at": order["occurred_at"] + 500, "line_count": None,
        "total_amount_minor": None, "covers_until": None,
    } for n, order in enumerate(orders)]
    last_paid = orders[-1]["occurred_at"] + 500
    closed = {**lines[-1], "record_id": f"{batch_id}-closed", "type": "BATCH_CLOSED",
              "kind": None, "order_id": None, "external_txn_id": None, "amount_minor": 0,
              "fee_minor": 0, "currency": None, "settled_at": last_paid + 3_600_000,
              "line_count": len(lines),
              "total_amount_minor": sum(line["amount_minor"] for line in lines),
              "covers_until": last_paid}
    return [*lines, closed]


def run_state_size(orders: int) -> dict[str, float]:
    settings = load_settings({
        "KAFKA_BOOTSTRAP_SERVERS": "localhost:9", "TOPUP_HMAC_SECRETS": SECRET,
        "TOPUP_RISK_RULES": str(RULES),
        "TOPUP_STATE_DIR": tempfile.mkdtemp(prefix="bench-state-"),
    })
    catalog, metrics = default_catalog(), Metrics()
    inputs = _inputs("state", orders)
    later = _inputs(LATER, max(1, orders // 10),
                    shift_ms=(settings.order_retention_days + 2) * DAY_MS)
    stages = all_stages(settings, catalog, metrics)
    driver = TopologyTestDriver(runtime_config(settings), stages, catalog, metrics,
                                retain_outputs=False)
    rss_before = memory_mib()["VmRSS"]
    try:
        for record in inputs:
            driver.pipe(record.topic, record.key, record.value, record.timestamp_ms)
        if driver.sent.get(topics.CREDITS, 0) != orders:
            raise RuntimeError(f"state-size: {driver.sent.get(topics.CREDITS)} credits for "
                               f"{orders} orders")
        rss_held = memory_mib()["VmRSS"]
        held = store_sizes(driver)
        _quiet(driver, inputs[-1].timestamp_ms, DAY_MS)
        for record in later:
            driver.pipe(record.topic, record.key, record.value, record.timestamp_ms)
        bounded = _past_every_retention(driver, later[-1], settings.order_retention_days)
    finally:
        driver.close()
    figures: dict[str, float] = {
        "bytes_per_order": sum(size for _, size in held.values()) / orders,
        "bytes_per_order_after_retention": sum(size for _, size in bounded.values()) / orders,
        "rss_growth_mib": rss_held - rss_before,
    }
    for name, (keys, size) in held.items():
        after_keys, after_size = bounded[name]
        figures[f"{name} bytes_per_order"] = size / orders
        figures[f"{name} keys_per_order"] = keys / orders
        figures[f"{name} bytes_per_order_after_retention"] = after_size / orders
        figures[f"{name} keys_after_retention"] = after_keys
    return figures


def _quiet(driver: TopologyTestDriver, since_ms: int, span_ms: int) -> None:
    for partition in range(driver.partitions):
        driver.tick(partition, span_ms, since_ms + span_ms)


def _past_every_retention(driver: TopologyTestDriver, last: Record,
                          retention_days: int) -> dict[str, tuple[int, int]]:
    """Event time moved on once more past every retention, then ticks on every partition
    until no store has shrunk for a quiet day (removals are bounded per record, and
    timers are rounded to the hour, so it takes rounds)."""
    at = last.timestamp_ms + (retention_days + 2) * DAY_MS
    _quiet(driver, last.timestamp_ms, at - last.timestamp_ms)
    sizes, unchanged = store_sizes(driver), 0
    for _ in range(MAX_TICK_ROUNDS):
        _quiet(driver, at, TICK_MS)
        at += TICK_MS
        now = store_sizes(driver)
        unchanged = unchanged + 1 if now == sizes else 0
        if unchanged * TICK_MS >= DAY_MS:
            return now
        sizes = now
    raise RuntimeError(f"state-size: stores still shrinking after {MAX_TICK_ROUNDS} rounds")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.state_size", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    args = parser.parse_args()
    print(json.dumps(run_state_size(args.orders), indent=2))


if __name__ == "__main__":
    main()
