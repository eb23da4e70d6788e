"""Recovery: a worker that lost its local state, timed until it processes again.

Building a million orders' state through the pipeline would take hours, so the state is
seeded the way a restore sees it: straight onto the changelog topics, in the stores' own
encoding, one changelog partition per source partition. Worker A restores it and is then
killed and its state dir deleted; worker B starts with the same app id and an empty state
dir, and a probe (an order and its signed callback, produced at B's launch) times how long
until B credits again. B's memory and state dir are measured while it holds the state.

Then the restarts with intact local state (issue 16): B is stopped (SIGTERM) and started
again on its state dir, then killed (SIGKILL) and started again; each time a new probe
times how long until it credits, and the worker reports how many changelog records its
restore applied (only the tail after its checkpoints).

Every topic of the broker is recreated first (as `python -m bench` does): use a broker of
the benchmark's own.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupState, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.harness import recreate_topics
from bench.worker_process import RULES, BenchWorker
from bench.workload import SECRET, order_and_callback
from streams import topics
from streams.admin import create_topics
from streams.codecs import default_catalog
from streams.config import Settings, load_settings
from streams.domain.common.ids import entry_id
from streams.domain.orders.inputs import Context, OrderEvent, RiskDecision, RiskVerdict
from streams.domain.orders.machine import step
from streams.domain.orders.state import OrderState, OrderStatus
from streams.kafka_clients import PARTITIONER, producer
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.runtime.store import encode_value
from streams.runtime.worker import changelog_specs
from streams.stages.intake import SEEN_STORE, dedup_key
from streams.stages.orders import ORDER_STATE
from streams.topology import all_stages
from streams.workload import BASE_TIME_MS, order_created, paid_event

MIB = 1024 * 1024
# Seeded order ids are "<run>-o<7 digits>": the template's id is replaced by each one.
SEED_RUN = "seed"
TEMPLATE_ORDER = f"{SEED_RUN}-o0000000"


# -- seeding -------------------------------------------------------------------------------


def credited_state(order: dict) -> OrderState:
    """The state the order machine leaves a paid, allowed and credited order in."""
    def ctx(now: int) -> Context:
        return Context(now_ms=now, credits_frozen=False, refunds_frozen=False,
                       require_risk_verdict=True, correlation_id=f"corr-{order['order_id']}")

    created, paid_at = order["occurred_at"], order["occurred_at"] + 500
    state, _ = step(None, OrderEvent.from_record(order), ctx(created))
    state, _ = step(state, paid_event(order, order["amount_minor"], paid_at), ctx(paid_at))
    verdict = RiskVerdict(order["order_id"], RiskDecision.ALLOW, 0, (), paid_at + 100,
                          "bench-never-fires")
    state, _ = step(state, verdict, ctx(paid_at + 100))
    if state.status is not OrderStatus.CREDITED or not state.credited:
        raise RuntimeError(f"template order ended {state.status}, not credited")
    return state


def order_states(orders: int) -> Iterator[tuple[bytes, bytes]]:
    """(order id, order-state value) of `orders` credited orders.

    Running the state machine costs ~150 us an order, minutes for a million, so it runs
    once for a template whose JSON is then re-issued under each order id, with that
    order's own ledger entry id (a hash, not a substitution of the template's).
    """
    template = order_created(SEED_RUN, 0, random.Random(1)).record
    template["order_id"] = TEMPLATE_ORDER
    template["event_id"] = f"{TEMPLATE_ORDER}-created"
    state = credited_state(template)
    text = encode_value(state.to_dict()).decode()  # type: ignore[union-attr]
    old_entry = state.credit_entry_id
    assert old_entry is not None
    for index in range(orders):
        order_id = f"{SEED_RUN}-o{index:07d}"
        new_entry = entry_id(order_id, "CREDIT", f"txn-{order_id}", None)
        value = text.replace(TEMPLATE_ORDER, order_id).replace(old_entry, new_entry)
        yield order_id.encode(), value.encode()


def dedup_entries(dedup_ids: int) -> Iterator[tuple[bytes, bytes]]:
    """(provider:event_id, received_at) as the intake stage stores a first sighting."""
    for index in range(dedup_ids):
        key = dedup_key("hmac", f"evt-{SEED_RUN}-e{index:07d}")
        yield key.encode(), encode_value(BASE_TIME_MS + index * 100)  # type: ignore[misc]


def seed_changelogs(settings: Settings, orders: int, dedup_ids: int) -> int:
    """Writes the order-state and webhook-dedup changelogs; returns records written.

    Each key on the partition its own hash gives (before the family's prefix): an order
    id's is the partition number topup.orders gives it, which is where its state lives.
    Dedup ids land by their own hash, as even a spread as the webhooks' order-id keys.
    """
    stages = all_stages(settings, default_catalog(), Metrics())
    create_topics(settings, changelog_specs(settings.app_id, stages))
    out = Producer({
        "bootstrap.servers": settings.bootstrap_servers,
        "partitioner": PARTITIONER,
        "linger.ms": 50,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    })
    specs = {spec.name: spec for stage in stages for spec in stage.stores}
    written = 0
    for store, entries in ((ORDER_STATE.name, order_states(orders)),
                           (SEEN_STORE, dedup_entries(dedup_ids))):
        spec = specs[store]
        topic, prefix = spec.changelog(settings.app_id), spec.key_prefix.encode()
        for key, value in entries:
            while True:
                try:
                    out.produce(topic, value, prefix + key,
                                partition_for(key, settings.partitions))
                    break
                except BufferError:
                    out.poll(0.1)
            written += 1
            if written % 10_000 == 0:
                out.poll(0)
    if out.flush(300) != 0:
        raise RuntimeError("seeding: records still unsent after 300s")
    return written


# -- workers -------------------------------------------------------------------------------


def wait_group_empty(bootstrap: str, group: str, timeout_s: float = 120) -> float:
    """Seconds until the killed worker's group member has expired (its session timeout),
    so B's start is timed on restore alone, not on the broker noticing A is gone."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        description = admin.describe_consumer_groups([group])[group].result()
        if description.state in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD):
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"group {group} still has members after {timeout_s}s")


def dir_mib(path: Path) -> float:
    """Allocated size on disk (du), not apparent size."""
    blocks = sum(f.stat().st_blocks for f in path.rglob("*") if f.is_file())
    return blocks * 512 / MIB


# -- the probe -----------------------------------------------------------------------------


def produce_probe(settings: Settings, run_id: str) -> str:
    """An order and its signed payment callback, as the bench workload makes them."""
    catalog = default_catalog()
    out = producer(settings)
    order, callback = order_and_callback(run_id, 0, random.Random(2))
    out.produce(topics.ORDERS, key=order["order_id"], value=catalog.encode("OrderEvent", order))
    out.produce(topics.WEBHOOKS, key=order["order_id"],
                value=catalog.encode("WebhookDelivery", callback))
    out.flush(30)
    return order["order_id"]


def credits_reader(settings: Settings) -> Consumer:
    """read_committed from the start of topup.credits (fresh: nothing else is on it)."""
    reader = Consumer({
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": f"bench-recovery-reader-{uuid.uuid4().hex[:8]}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
    })
    partitions = reader.list_topics(topics.CREDITS, timeout=10).topics[topics.CREDITS].partitions
    reader.assign([TopicPartition(topics.CREDITS, p, OFFSET_BEGINNING) for p in partitions])
    return reader


# -- the run -------------------------------------------------------------------------------


def run_recovery(
    bootstrap: str, orders: int = 1_000_000, dedup_ids: int = 5_000_000
) -> dict[str, float]:
    app_id = f"bench-recovery-{uuid.uuid4().hex[:8]}"
    settings = load_settings({
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPUP_APP_ID": app_id, "TOPUP_PARTITIONS": "4",
        "TOPUP_HMAC_SECRETS": SECRET, "TOPUP_RISK_RULES": str(RULES),
    })
    # Fresh input topics: a new group reads from the earliest offset, and any backlog
    # would be processed before the probe.
    recreate_topics(settings)
    started = time.monotonic()
    seeded = seed_changelogs(settings, orders, dedup_ids)
    seed_s = time.monotonic() - started

    work = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    timeout_s = 1800.0
    first = BenchWorker(bootstrap, app_id, work / "state-a")
    try:
        first.wait_ready(timeout_s)
    finally:
        first.kill()
    shutil.rmtree(first.state_dir)
    session_wait_s = wait_group_empty(bootstrap, app_id)

    reader = credits_reader(settings)
    second = BenchWorker(bootstrap, app_id, work / "state-b")
    restarts: dict[str, float] = {}
    try:
        ready_s, credit_s = time_to_credit(second, settings, reader, f"probe-{app_id}",
                                           time.monotonic(), timeout_s)
        rss, peak = second.memory_mib()
        state_mib = dir_mib(second.state_dir)
        # The worker's own timer: restore alone, without process start and group join.
        restore_in_worker_s = second.metrics().get(("topup_restore_seconds", ""), math.nan)
        for how in ("sigterm", "sigkill"):
            if how == "sigterm":
                second.stop()
            else:
                second.kill()
                restarts["restart_sigkill_session_wait_s"] = wait_group_empty(bootstrap, app_id)
            launched = time.monotonic()
            second = BenchWorker(bootstrap, app_id, work / "state-b")
            _, restarts[f"restart_{how}_credit_s"] = time_to_credit(
                second, settings, reader, f"probe-{how}-{app_id}", launched, timeout_s)
            samples = second.metrics()
            restarts[f"restart_{how}_restore_records"] = samples.get(
                ("topup_restore_records", ""), math.nan)
            restarts[f"restart_{how}_restore_in_worker_s"] = samples.get(
                ("topup_restore_seconds", ""), math.nan)
    finally:
        reader.close()
        second.stop()
    shutil.rmtree(work, ignore_errors=True)
    return {
        "restore_s": ready_s,
        "first_credit_s": credit_s,
        "rss_mib": rss,
        "peak_rss_mib": peak,
        "state_dir_mib": state_mib,
        "seeded_records": float(seeded),
        "restore_in_worker_s": restore_in_worker_s,
        "restore_records_per_s": seeded / restore_in_worker_s,
        "seed_s": seed_s,
        "session_wait_s": session_wait_s,
        **restarts,
    }


def time_to_credit(worker: BenchWorker, settings: Settings, reader: Consumer, run_id: str,
                   launched: float, timeout_s: float) -> tuple[float, float]:
    """Produces a probe and waits for its credit; (seconds until ready, until credited),
    both from `launched`."""
    probe = produce_probe(settings, run_id)
    catalog = default_catalog()
    ready_s = credit_s = None
    while credit_s is None:
        worker.check_alive()
        if time.monotonic() - launched > timeout_s:
            raise RuntimeError(f"probe {probe} not credited in {timeout_s}s")
        if ready_s is None and worker.ready():
            ready_s = time.monotonic() - launched
        for message in reader.consume(100, 0.1):
            if message.error() is None and catalog.decode(
                    "LedgerEntry", message.value())["order_id"] == probe:
                credit_s = time.monotonic() - launched
    # Ready comes before any credit; a credit seen first means the poll missed it.
    return (ready_s if ready_s is not None else credit_s), credit_s


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__)
    parser.add_argument("bootstrap")
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--dedup-ids", type=int, default=5_000_000)
    args = parser.parse_args()
    print(json.dumps(run_recovery(args.bootstrap, args.orders, args.dedup_ids), indent=2))
