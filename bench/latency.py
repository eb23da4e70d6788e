"""Latency of the credit path at a fixed callback rate: from a signed callback's write to
topup.webhooks (the broker's acknowledgement) to its credit being readable, read_committed,
on topup.credits. p50/p99/p99.9 over every callback of the run.

Orders are pre-produced and fully decided by the worker before the first callback, so the
measured path is callback -> intake -> payments -> order -> credit, and nothing else.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from bench.cpu import CpuSample, cores_used, local_brokers
from bench.harness import recreate_topics
from bench.worker_process import BenchWorker
from bench.workload import order_and_callback
from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings, load_settings
from streams.kafka_clients import producer

READY_TIMEOUT_S = 120.0
# The start of a run, reported apart: a worker idle until the first callback starts with
# tiny batches, and the broker is slow to take the first transactional writes to
# partitions the run has not written before (bench/HISTORY.md, eighth session).
START_S = 2.0
# How long, after the last write, credits may still arrive: a worker that falls behind is
# given this long to drain, then the run reports what it got.
DRAIN_MIN_S = 30.0


def _merged(workers: list[BenchWorker]) -> dict[tuple[str, str], float]:
    """Every worker's metrics, each sample summed over the workers."""
    merged: dict[tuple[str, str], float] = {}
    for worker in workers:
        for key, value in worker.metrics().items():
            merged[key] = merged.get(key, 0.0) + value
    return merged


def _wait_orders_settled(workers: list[BenchWorker], orders: int, timeout_s: float) -> None:
    """The order stage has read every order's risk decision, and then the worker has read
    nothing for a while: what deciding the orders fed onward (order status, reconciliation
    inputs) is done too, and nothing of the orders competes with the callbacks."""
    deadline = time.monotonic() + timeout_s
    decisions = f'topic="{topics.RISK_DECISIONS}"'
    last_total, quiet_since = -1.0, time.monotonic()
    while True:
        for worker in workers:
            worker.check_alive()
        consumed = workers[0].consumed(_merged(workers))
        total = sum(consumed.values())
        if total != last_total:
            last_total, quiet_since = total, time.monotonic()
        elif consumed.get(decisions, 0.0) >= orders and time.monotonic() - quiet_since > 2:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker did not settle {orders} orders in {timeout_s:.0f}s; "
                               f"see {workers[0].log_path}")
        time.sleep(0.25)


def _pre_produce(settings: Settings, count: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    """Writes `count` orders; returns their callbacks (key, encoded value), signed and
    encoded now so the paced writer has nothing to compute."""
    catalog = default_catalog()
    out = producer(settings, **{"linger.ms": 20, "batch.num.messages": 10_000})
    rng = random.Random(seed)
    callbacks = []
    for index in range(count):
        order, callback = order_and_callback("lat", index, rng)
        key = order["order_id"].encode()
        out.produce(topics.ORDERS, key=key, value=catalog.encode("OrderEvent", order))
        callbacks.append((key, catalog.encode("WebhookDelivery", callback)))
        if index % 5_000 == 0:
            out.poll(0)
    if out.flush(120) != 0:
        raise RuntimeError("orders not all acknowledged within 120s")
    return callbacks


class _CreditWatcher(threading.Thread):
    """Reads topup.credits read_committed and keeps when each order's credit first became
    readable (monotonic seconds, the clock the writer uses)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="credit-watcher", daemon=True)
        self.readable: dict[bytes, float] = {}
        self.stopping = threading.Event()
        self.assigned = threading.Event()
        self._lock = threading.Lock()
        self._catalog = default_catalog()
        self._expected_partitions = settings.partitions
        self._consumer = Consumer({
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"bench-latency-reader-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed", "enable.auto.commit": False,
            # The broker answers a fetch as soon as anything is readable; the cap only
            # bounds how late an empty fetch is re-issued.
            "fetch.wait.max.ms": 10,
        })

    def count(self) -> int:
        with self._lock:
            return len(self.readable)

    def run(self) -> None:
        try:
            self._consumer.assign([TopicPartition(topics.CREDITS, p, OFFSET_BEGINNING)
                                   for p in self._partitions()])
            self.assigned.set()
            while not self.stopping.is_set():
                # poll() returns at the first readable record (consume() would wait for a
                # full batch or its timeout); whatever else is already fetched came with it.
                first = self._consumer.poll(0.05)
                if first is None:
                    continue
                now = time.monotonic()
                self._record([first, *self._consumer.consume(1_000, 0)], now)
        finally:
            self._consumer.close()

    def _partitions(self) -> list[int]:
        # Just after the topics are recreated, metadata can still show none of them.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            metadata = self._consumer.list_topics(topics.CREDITS, timeout=10)
            partitions = metadata.topics[topics.CREDITS].partitions
            if len(partitions) == self._expected_partitions:
                return sorted(partitions)
            time.sleep(0.2)
        raise RuntimeError(f"{topics.CREDITS} has no {self._expected_partitions} partitions")

    def _record(self, batch: list[Message], now: float) -> None:
        for message in batch:
            if message.error():
                continue
            entry = self._catalog.decode("LedgerEntry", message.value())
            key = entry["order_id"].encode()
            if entry["op"] == "CREDIT":
                with self._lock:
                    self.readable.setdefault(key, now)


def _paced_write(
    settings: Settings, callbacks: list[tuple[bytes, bytes]], rate_per_s: int
) -> tuple[dict[bytes, float], float]:
    """Writes record i at start + i/rate (a schedule, so a late send never pushes the rest
    later); returns each order's acknowledgement time and the achieved rate."""
    out = producer(settings, **{"linger.ms": 1})
    acked: dict[bytes, float] = {}

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is None:
            acked[message.key()] = time.monotonic()

    # The first callback is acknowledged before the schedule starts. A cold idempotent
    # producer holds its records until it has a producer id and the topic's leaders, then
    # releases them at once (~250 acks in the first 100 ms, measured): the worker started
    # behind a backlog at 500/s that the schedule never asked for.
    first_key, first_value = callbacks[0]
    out.produce(topics.WEBHOOKS, key=first_key, value=first_value, on_delivery=on_delivery)
    out.flush(30)
    start = time.monotonic()
    for index, (key, value) in enumerate(callbacks[1:], start=1):
        due = start + index / rate_per_s
        # poll() serves delivery reports while waiting, but returns after the first one:
        # keep waiting until the record is due.
        while (wait := due - time.monotonic()) > 0:
            out.poll(wait)
        out.produce(topics.WEBHOOKS, key=key, value=value, on_delivery=on_delivery)
        out.poll(0)
    last_send = time.monotonic()
    if out.flush(60) != 0:
        raise RuntimeError("callbacks not all acknowledged within 60s")
    achieved = (len(callbacks) - 1) / (last_send - start) if len(callbacks) > 1 else 0.0
    return acked, achieved


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the samples at or below it."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def by_phase(acked_at: list[float], latencies: list[float],
             start_s: float = START_S) -> dict[str, float]:
    """Percentiles of the callbacks acknowledged in the run's first `start_s` seconds
    (`start_`) and of the rest (`steady_`); `acked_at` and `latencies` pair up."""
    if not acked_at:
        return {}
    first = min(acked_at)
    pairs = list(zip(acked_at, latencies, strict=True))
    start = sorted(lat for at, lat in pairs if at - first < start_s)
    steady = sorted(lat for at, lat in pairs if at - first >= start_s)
    return {
        "start_p50_ms": _percentile(start, 0.50) * 1000,
        "start_p99_ms": _percentile(start, 0.99) * 1000,
        "steady_p50_ms": _percentile(steady, 0.50) * 1000,
        "steady_p99_ms": _percentile(steady, 0.99) * 1000,
        "steady_p999_ms": _percentile(steady, 0.999) * 1000,
    }


def _sustained(latencies: list[float], complete: bool) -> bool:
    """Kept up: every credit arrived, and the last 10% of callbacks (in write order) waited
    no longer than the first 10%, give or take noise. A worker that falls behind piles
    up a backlog, and the wait of the later callbacks grows with it."""
    n = len(latencies)
    if not complete or n < 20:
        return complete
    first = sorted(latencies[:n // 10])
    last = sorted(latencies[int(n * 0.9):])
    return _percentile(last, 0.5) <= 1.25 * _percentile(first, 0.5) + 0.1


def _delta(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float],
           name: str) -> float:
    """How much every sample of `name` (summed over its labels) grew between the two."""
    return sum(value - before.get(key, 0.0) for key, value in after.items() if key[0] == name)


def where_time_goes(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float],
                    window_s: float, workers: int = 1) -> dict[str, float]:
    """The worker loop over the callback window, from its own metrics: how many
    transactions, how many records each, and how a batch's time splits between handling
    the records and committing them. A callback's credit waits about one batch cycle per
    hop (an internal topic between stages) plus the fetch of the next hop. Per worker:
    `busy_share` is the share of its window spent handling and committing."""
    batches = _delta(before, after, "topup_batches_committed_total")
    records = _delta(before, after, "topup_records_consumed_total")
    commit_s = _delta(before, after, "topup_transaction_commit_seconds_sum")
    flush_s = _delta(before, after, "topup_transaction_flush_seconds_sum")
    changelog_partitions = _delta(before, after, "topup_changelog_partitions_written_total")
    handle_s = _delta(before, after, "topup_stage_handle_seconds_sum")
    per_batch = max(batches, 1.0)
    return {
        "records": records,
        "batches": batches,
        "records_per_batch": records / per_batch,
        "batch_cycle_ms": window_s * workers / per_batch * 1000,
        "handle_ms_per_batch": handle_s / per_batch * 1000,
        "commit_ms_per_batch": commit_s / per_batch * 1000,
        # The commit's wait for its records' acknowledgements, and what drives it.
        "flush_ms_per_batch": flush_s / per_batch * 1000,
        "changelog_partitions_per_batch": changelog_partitions / per_batch,
        "busy_share": (handle_s + commit_s) / (window_s * workers) if window_s > 0 else math.nan,
    }


def run_latency(bootstrap: str, rate_per_s: int, seconds: float = 20.0,
                workers: int = 1) -> dict[str, float]:
    """Callback write -> credit readable, at `rate_per_s` for `seconds`, from fresh topics,
    with `workers` workers in one group. `credits_per_s` is how fast credits came from
    the first write to the last credit: at a rate above what the workers keep up with, it
    is their throughput on the credit path."""
    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    count = max(1, round(rate_per_s * seconds))
    recreate_topics(settings)
    # Reading from before the first callback, so no credit is missed or stamped late.
    watcher = _CreditWatcher(settings)
    watcher.start()
    app_id = f"bench-latency-{uuid.uuid4().hex[:8]}"
    group = [BenchWorker(bootstrap, app_id=app_id) for _ in range(workers)]
    try:
        for worker in group:
            worker.wait_ready(READY_TIMEOUT_S)
        callbacks = _pre_produce(settings, count)
        # Generous: 100 orders/s is several times slower than the worker settles them.
        _wait_orders_settled(group, count, timeout_s=max(120.0, count / 100))
        if not watcher.assigned.wait(30):
            raise RuntimeError("credit reader not assigned in 30s")
        brokers = local_brokers()
        pids = [worker.process.pid for worker in group]
        before, window_start = _merged(group), time.monotonic()
        cpu_before = CpuSample.take(pids, brokers)
        acked, achieved = _paced_write(settings, callbacks, rate_per_s)
        deadline = time.monotonic() + max(DRAIN_MIN_S, seconds)
        while watcher.count() < len(acked) and time.monotonic() < deadline:
            for worker in group:
                worker.check_alive()
            time.sleep(0.1)
        window_s = time.monotonic() - window_start
        cpu = cores_used(cpu_before, CpuSample.take(pids, brokers), window_s)
        loop = where_time_goes(before, _merged(group), window_s, workers)
    finally:
        watcher.stopping.set()
        for worker in group:
            worker.stop()
    watcher.join(30)
    # In write order, so the sustained check can compare the end of the run to its start.
    credited = [key for key, _ in callbacks if key in acked and key in watcher.readable]
    latencies = [watcher.readable[key] - acked[key] for key in credited]
    ordered = sorted(latencies)
    first_ack = min(acked.values(), default=math.nan)
    last_credit = max(watcher.readable.values(), default=math.nan)
    return {
        "rate_per_s": float(rate_per_s),
        "workers": float(workers),
        "achieved_rate_per_s": achieved,
        "callbacks": float(count),
        "credits": float(len(latencies)),
        "p50_ms": _percentile(ordered, 0.50) * 1000,
        "p99_ms": _percentile(ordered, 0.99) * 1000,
        "p999_ms": _percentile(ordered, 0.999) * 1000,
        "max_ms": (ordered[-1] if ordered else math.nan) * 1000,
        **by_phase([acked[key] for key in credited], latencies),
        "sustained": 1.0 if _sustained(latencies, len(latencies) == count) else 0.0,
        "credits_per_s": len(latencies) / (last_credit - first_ack) if latencies else 0.0,
        "records_per_callback": loop.pop("records") / count,
        **loop,
        **cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--rate", type=int, action="append", required=True,
                        help="callbacks per second; repeat for several runs")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    for rate in args.rate:
        print(json.dumps(run_latency(args.bootstrap, rate, args.seconds, args.workers)),
              flush=True)


if __name__ == "__main__":
    main()
