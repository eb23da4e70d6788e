"""Restart and failover with intact local state (issue 16): seconds until credits flow again.

The state is seeded straight onto the changelogs, as bench/recovery.py does (processing a
million orders through the pipeline takes hours on this machine): N credited orders and N
dedup ids. Every timing ends when a probe on *every* partition (an order and its signed
callback, produced at the moment timed from) has been credited, read_committed.

restart: a worker restores the seeded state in full once; it is then stopped (SIGTERM) and
started again on its state dir, then killed (SIGKILL) and started again. After the kill
the bench first waits for the broker to expire the dead member (reported apart,
`*_session_wait_s`), so the figure is the restart's own. The worker reports how many
changelog records its restore applied (only the tail after its checkpoints). Measured at
two sizes: their ratio says whether a restart's cost grows with the state.

failover: two workers hold the state; the second is killed and the survivor takes over
its partitions. The time runs from the kill, so it includes the broker noticing the death
(the session timeout, 6 s; `*_detect_s` is when the group was seen down to one member).
The `*_3s_session` rows repeat the standby failover with 3 s sessions (deploy/kafka's
broker allows 2 s), the setting a failover under 5 s after a kill needs. With standbys
(TOPUP_STANDBY_REPLICAS=1) the survivor kept the dead worker's half warm; without them,
its old copy of that half was removed once TOPUP_STATE_CLEANUP_DELAY_S (1 s here) passed,
as it is in production after the delay, so the takeover restores that half in full.

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
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from bench.harness import recreate_topics
from bench.recovery import credits_reader, seed_changelogs, wait_group_empty
from bench.worker_process import RULES, BenchWorker
from bench.workload import SECRET, order_and_callback
from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings, load_settings
from streams.kafka_clients import producer
from streams.partitioning import partition_for

SESSION_TIMEOUT_S = 6
FAST_SESSION_TIMEOUT_S = 3
TIMEOUT_S = 1800.0
PARTITIONS = 4


def seeded(bootstrap: str, orders: int, tag: str) -> tuple[Settings, float]:
    app_id = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    settings = load_settings({
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPUP_APP_ID": app_id,
        "TOPUP_PARTITIONS": str(PARTITIONS), "TOPUP_HMAC_SECRETS": SECRET,
        "TOPUP_RISK_RULES": str(RULES),
    })
    recreate_topics(settings)
    started = time.monotonic()
    seed_changelogs(settings, orders, orders)
    return settings, time.monotonic() - started


def produce_probes(settings: Settings, run_id: str) -> set[str]:
    """An order and its callback on every partition; their order ids."""
    catalog = default_catalog()
    out = producer(settings)
    rng, index = random.Random(2), 0
    ids: set[str] = set()
    covered: set[int] = set()
    while len(covered) < settings.partitions:
        order, callback = order_and_callback(run_id, index, rng)
        index += 1
        partition = partition_for(order["order_id"].encode(), settings.partitions)
        if partition in covered:
            continue
        covered.add(partition)
        ids.add(order["order_id"])
        out.produce(topics.ORDERS, key=order["order_id"],
                    value=catalog.encode("OrderEvent", order))
        out.produce(topics.WEBHOOKS, key=order["order_id"],
                    value=catalog.encode("WebhookDelivery", callback))
    out.flush(30)
    return ids


def wait_credited(reader: Consumer, pending: set[str], alive: list[BenchWorker],
                  since: float, each: Callable[[], None] | None = None) -> float:
    """Seconds from `since` until every order in `pending` was credited."""
    catalog = default_catalog()
    pending = set(pending)
    while pending:
        for worker in alive:
            worker.check_alive()
        if time.monotonic() - since > TIMEOUT_S:
            raise RuntimeError(f"probes {sorted(pending)} not credited in {TIMEOUT_S}s")
        if each is not None:
            each()
        for message in reader.consume(100, 0.1):
            if message.error() is None and (value := message.value()) is not None:
                pending.discard(catalog.decode("LedgerEntry", value)["order_id"])
    return time.monotonic() - since


def _restore_figures(worker: BenchWorker, prefix: str) -> dict[str, float]:
    samples = worker.metrics()
    return {f"{prefix}_restore_records": samples.get(("topup_restore_records", ""), math.nan),
            f"{prefix}_restore_in_worker_s": samples.get(("topup_restore_seconds", ""),
                                                         math.nan)}


def run_restart(bootstrap: str, orders: int) -> dict[str, float]:
    settings, seed_s = seeded(bootstrap, orders, "restart")
    app_id, work = settings.app_id, Path(tempfile.mkdtemp(prefix="bench-restart-"))
    env = {"TOPUP_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S)}
    reader = credits_reader(settings)
    launched = time.monotonic()
    worker = BenchWorker(bootstrap, app_id, work / "state", env=env)
    figures = {"seed_s": seed_s}
    try:
        figures["full_restore_credit_s"] = wait_credited(
            reader, produce_probes(settings, f"full-{app_id}"), [worker], launched)
        for how in ("sigterm", "sigkill"):
            if how == "sigterm":
                worker.terminate()
            else:
                worker.kill()
                figures["sigkill_session_wait_s"] = wait_group_empty(bootstrap, app_id)
            launched = time.monotonic()
            worker = BenchWorker(bootstrap, app_id, work / "state", env=env)
            figures[f"{how}_credit_s"] = wait_credited(
                reader, produce_probes(settings, f"{how}-{app_id}"), [worker], launched)
            figures |= _restore_figures(worker, how)
    finally:
        reader.close()
        worker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def _members(admin: AdminClient, group: str) -> int:
    return len(admin.describe_consumer_groups([group])[group].result().members)


def _poll(condition: Callable[[], bool], what: str, alive: list[BenchWorker]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        for worker in alive:
            worker.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not reached in {TIMEOUT_S}s")
        time.sleep(0.2)


def _partition_dirs(state_dir: Path) -> int:
    return sum(1 for path in state_dir.glob("*/*") if path.is_dir())


def run_failover(bootstrap: str, orders: int, standby: bool, how: str = "sigkill",
                 session_s: int = SESSION_TIMEOUT_S) -> dict[str, float]:
    """`how`: the second worker SIGKILLed (the broker notices at its session's expiry) or
    SIGTERMed (it leaves the group as it stops)."""
    tag = (("standby" if standby else "nostandby") + ("_sigterm" if how == "sigterm" else "")
           + ("" if session_s == SESSION_TIMEOUT_S else f"_{session_s}s_session"))
    settings, seed_s = seeded(bootstrap, orders, f"failover-{tag}")
    app_id, work = settings.app_id, Path(tempfile.mkdtemp(prefix="bench-failover-"))
    env = {"TOPUP_SESSION_TIMEOUT_S": str(session_s),
           "TOPUP_STANDBY_REPLICAS": "1" if standby else "0",
           "TOPUP_STATE_CLEANUP_DELAY_S": "1"}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    reader = credits_reader(settings)
    survivor = BenchWorker(bootstrap, app_id, work / "a", env=env)
    doomed: BenchWorker | None = None
    figures = {"seed_s": seed_s}
    try:
        wait_credited(reader, produce_probes(settings, f"one-{app_id}"), [survivor],
                      time.monotonic())
        doomed = BenchWorker(bootstrap, app_id, work / "b", env=env)
        both = [survivor, doomed]
        _poll(lambda: _members(admin, app_id) == 2, "two members", both)
        # Both restored and processing before the failover is timed: killed or stopped
        # during its own restore, the second worker would time that restore instead.
        _poll(lambda: survivor.ready() and doomed.ready(), "both workers ready", both)
        wait_credited(reader, produce_probes(settings, f"two-{app_id}"), both, time.monotonic())
        if standby:
            _poll(lambda: survivor.metrics().get(("topup_standby_lag_records", "")) == 0.0,
                  "standby caught up", both)
        else:
            # The survivor's copy of the other half removed after the cleanup delay.
            _poll(lambda: _partition_dirs(survivor.state_dir)
                  <= _partition_dirs(doomed.state_dir), "old copies removed", both)
        killed = time.monotonic()
        if how == "sigterm":
            doomed.process.terminate()
        else:
            doomed.kill()
        probes = produce_probes(settings, f"failover-{app_id}")
        detected: list[float] = []

        def watch() -> None:
            if not detected and _members(admin, app_id) == 1:
                detected.append(time.monotonic() - killed)

        figures[f"{tag}_credit_s"] = wait_credited(reader, probes, [survivor], killed, watch)
        figures[f"{tag}_detect_s"] = detected[0] if detected else math.nan
        figures |= _restore_figures(survivor, tag)
    finally:
        reader.close()
        survivor.stop()
        if doomed is not None:
            doomed.kill()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def run_restarts(bootstrap: str, sizes: tuple[int, ...], failover_orders: int
                 ) -> dict[str, float]:
    """The `restart` section of `python -m bench`: restarts at each size (with the
    largest over the smallest in the same run) and failovers with and without standbys."""
    figures: dict[str, float] = {}
    for orders in sizes:
        figures |= {f"{orders} {name}": value
                    for name, value in run_restart(bootstrap, orders).items()}
    small, large = min(sizes, default=0), max(sizes, default=0)
    if small != large:
        for how in ("sigterm", "sigkill"):
            figures[f"{how}_credit {large} over {small}"] = (
                figures[f"{large} {how}_credit_s"] / figures[f"{small} {how}_credit_s"])
    for standby, how, session_s in ((True, "sigkill", SESSION_TIMEOUT_S),
                                    (True, "sigkill", FAST_SESSION_TIMEOUT_S),
                                    (True, "sigterm", SESSION_TIMEOUT_S),
                                    (False, "sigkill", SESSION_TIMEOUT_S)):
        figures |= {f"{failover_orders} {name}": value for name, value in
                    run_failover(bootstrap, failover_orders, standby, how, session_s).items()
                    if name != "seed_s"}
    return figures


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.restart", description=__doc__)
    parser.add_argument("bootstrap")
    parser.add_argument("--sizes", default="200000,1000000")
    parser.add_argument("--failover-orders", type=int, default=1_000_000)
    args = parser.parse_args()
    # --sizes "": the failovers alone.
    sizes = tuple(int(size) for size in args.sizes.split(",") if size)
    print(json.dumps(run_restarts(args.bootstrap, sizes, args.failover_orders), indent=2))
