"""The end-to-end demo: topics, a worker, a generated workload, a report read back from Kafka."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from streams import topics
from streams.admin import create_topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.kafka_clients import producer, read_committed
from streams.workload import order_created

BAD_RECORD = b"\x00this is not avro\xff"


def _start_worker(settings: Settings, run_dir: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, TOPUP_STATE_DIR=str(run_dir / "state"))
    log = (run_dir / "worker.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=log, stderr=log
    )


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def run_demo(settings: Settings, *, orders: int, timeout_s: float) -> int:
    run_id = f"demo{uuid.uuid4().hex[:8]}"
    run_dir = Path(".demo") / run_id
    run_dir.mkdir(parents=True)
    catalog = default_catalog()
    rng = random.Random(7)

    for report in create_topics(settings):
        print(f"topic {report.name}: {report.outcome} {report.detail}".rstrip())
    worker = _start_worker(settings, run_dir)
    print(f"worker started (pid {worker.pid}); log in {run_dir / 'worker.log'}")
    try:
        produced = producer(settings)
        generated = [order_created(run_id, i, rng) for i in range(orders)]
        # The first order is delivered twice: it must still get exactly one status.
        for order in [*generated, generated[0]]:
            produced.produce(
                topics.ORDERS,
                key=order.record["order_id"],
                value=catalog.encode("OrderEvent", order.record),
                headers=[("correlation_id", order.correlation_id.encode())],
            )
        bad_key = f"{run_id}-bad"
        produced.produce(topics.ORDERS, key=bad_key, value=BAD_RECORD)
        produced.flush(30)
        print(f"produced {orders} orders, 1 duplicate and 1 undecodable record")

        deadline = time.monotonic() + timeout_s
        statuses: list[dict] = []
        dead: list[dict] = []
        while time.monotonic() < deadline and (len(statuses) < orders or not dead):
            until = min(deadline, time.monotonic() + 15)
            records = read_committed(settings, [topics.ORDER_STATUS, topics.DLQ], until=until)
            statuses = [
                catalog.decode("OrderStatus", r.value)
                for r in records
                if r.topic == topics.ORDER_STATUS and r.key and r.key.decode().startswith(run_id)
            ]
            dead = [
                catalog.decode("DeadLetter", r.value)
                for r in records
                if r.topic == topics.DLQ and r.key == bad_key.encode()
            ]
            if worker.poll() is not None:
                print(f"worker exited with {worker.returncode}; see {run_dir / 'worker.log'}")
                return 1
    finally:
        _stop_worker(worker)

    print()
    print(f"== TopUp Guard demo report ({run_id}) ==")
    by_status = Counter(s["status"] for s in statuses)
    print(f"order-status records read back: {len(statuses)} for {orders} orders")
    for status, count in sorted(by_status.items()):
        print(f"  {status:18} {count}")
    print(f"dead letters read back: {len(dead)}")
    for letter in dead:
        print(
            f"  {letter['error_kind']} from {letter['source_topic']}[{letter['partition']}]"
            f"@{letter['offset']}: {letter['error']} (original {len(letter['value'])} bytes kept: "
            f"{letter['value'] == BAD_RECORD})"
        )
    ok = len(statuses) == orders and len(dead) == 1 and dead[0]["value"] == BAD_RECORD
    print("result:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1
