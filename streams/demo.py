"""The end-to-end demo: topics, a worker, a generated workload, a report read back from Kafka."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from streams import topics
from streams.admin import create_topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.kafka_clients import ConsumedRecord, producer, read_committed
from streams.workload import Callback, DemoTraffic, GeneratedOrder, demo_traffic

BAD_RECORD = b"\x00this is not avro\xff"
OUTPUTS = [topics.ORDER_STATUS, topics.CREDITS, topics.ALERTS, topics.DLQ, topics.REVIEW_CASES,
           topics.RISK_DECISIONS, topics.RECON_BREAKS]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_worker(run_dir: Path, secret: str, web_port: int) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        TOPUP_STATE_DIR=str(run_dir / "state"),
        TOPUP_HMAC_SECRETS=secret,
        TOPUP_ORPHAN_HOLD_S="10",
        TOPUP_WEB_PORT=str(web_port),
        TOPUP_WEBHOOK_HOST="127.0.0.1",
        TOPUP_WEBHOOK_PORT=str(_free_port()),
    )
    log = (run_dir / "worker.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=log, stderr=log
    )


def _wait_until_ready(worker: subprocess.Popen[bytes], web_port: int, deadline: float) -> bool:
    """Poll /health: traffic goes in once the worker has restored its tables."""
    while time.monotonic() < deadline and worker.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/health", timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _produce(settings: Settings, traffic: DemoTraffic, run_id: str) -> None:
    catalog = default_catalog()
    out = producer(settings)
    for order in traffic.orders:
        out.produce(
            topics.ORDERS, key=order.record["order_id"],
            value=catalog.encode("OrderEvent", order.record),
            headers=[("correlation_id", order.correlation_id.encode())],
        )
    out.produce(topics.ORDERS, key=f"{run_id}-bad-order", value=BAD_RECORD)
    out.produce(topics.WEBHOOKS, key=f"{run_id}-bad-webhook", value=BAD_RECORD)
    for callback in traffic.callbacks:
        record = callback.delivery.as_record(callback.delivery_id, callback.received_at)
        out.produce(topics.WEBHOOKS, key="hmac", value=catalog.encode("WebhookDelivery", record))
    out.flush(30)


def _produce_paced(settings: Settings, order: GeneratedOrder, callback: Callback) -> None:
    catalog = default_catalog()
    out = producer(settings)
    out.produce(topics.ORDERS, key=order.record["order_id"],
                value=catalog.encode("OrderEvent", order.record),
                headers=[("correlation_id", order.correlation_id.encode())])
    record = callback.delivery.as_record(callback.delivery_id, callback.received_at)
    out.produce(topics.WEBHOOKS, key="hmac", value=catalog.encode("WebhookDelivery", record))
    out.flush(30)


def _produce_settlements(settings: Settings, traffic: DemoTraffic) -> None:
    catalog = default_catalog()
    out = producer(settings)
    for record in traffic.settlements:
        out.produce(topics.SETTLEMENTS, key=f"{record['provider']}|{record['merchant_id']}",
                    value=catalog.encode("SettlementRecord", record))
    out.flush(30)


class Readback:
    """This run's records on the output topics, decoded."""

    def __init__(self, run_id: str, records: list[ConsumedRecord]) -> None:
        catalog = default_catalog()

        def decoded(topic: str) -> list[dict[str, Any]]:
            name = topics.BY_NAME[topic].record
            return [catalog.decode(name, r.value) for r in records if r.topic == topic]

        def ours(value: Any) -> bool:
            return run_id in str(value)

        latest: dict[str, dict[str, Any]] = {}
        for status in decoded(topics.ORDER_STATUS):
            if ours(status["order_id"]):
                current = latest.get(status["order_id"])
                if current is None or status["version"] > current["version"]:
                    latest[status["order_id"]] = status
        self.final_status = {order_id: s["status"] for order_id, s in latest.items()}
        self.credits = [c for c in decoded(topics.CREDITS) if ours(c["order_id"])]
        self.alerts = [a for a in decoded(topics.ALERTS) if ours(a)]
        self.dead_letters = [d for d in decoded(topics.DLQ) if run_id.encode() in d["value"]
                             or ours(d["key"])]
        self.cases = [c for c in decoded(topics.REVIEW_CASES) if ours(c["order_id"])]
        self.decisions = [d for d in decoded(topics.RISK_DECISIONS) if ours(d["order_id"])]
        self.breaks = [b for b in decoded(topics.RECON_BREAKS) if ours(b["order_id"])]

    def decision_kinds(self) -> Counter[str]:
        return Counter(d["decision"] for d in self.decisions)

    def break_kinds(self) -> Counter[str]:
        return Counter(f"{b['category']}/{b['action']}" for b in self.breaks)

    def alert_kinds(self) -> Counter[str]:
        return Counter(a["kind"] for a in self.alerts)

    def dead_letter_kinds(self) -> Counter[str]:
        return Counter(d["error_kind"] for d in self.dead_letters)

    def matches(self, traffic: DemoTraffic) -> bool:
        alerts, letters = self.alert_kinds(), self.dead_letter_kinds()
        return (
            self.final_status == traffic.expected_status
            and len(self.credits) == traffic.expected_credits
            and all(alerts[k] == n for k, n in traffic.expected_alerts.items())
            and all(letters[k] == n for k, n in traffic.expected_dead_letters.items())
            and letters["UNDECODABLE"] == 2
            and all(self.decision_kinds()[k] == n for k, n in traffic.expected_decisions.items())
            and self.break_kinds() == Counter(traffic.expected_breaks)
        )


def _report(run_id: str, traffic: DemoTraffic, seen: Readback) -> None:
    print(f"\n== TopUp Guard demo report ({run_id}) ==")
    print(f"orders: {len(traffic.orders)}, callbacks delivered: {len(traffic.callbacks)}")
    expected = Counter(traffic.expected_status.values())
    actual = Counter(seen.final_status.values())
    print("final order status      read back   expected")
    for status in sorted(set(expected) | set(actual)):
        print(f"  {status:20} {actual[status]:9}   {expected[status]:8}")
    amounts = Counter()
    for credit in seen.credits:
        amounts[credit["currency"]] += credit["amount_minor"] + credit["bonus_minor"]
    print(f"ledger credits: {len(seen.credits)} (expected {traffic.expected_credits}), "
          f"distinct entry ids {len({c['entry_id'] for c in seen.credits})}, "
          + ", ".join(f"{v / 100:.2f} {k}" for k, v in sorted(amounts.items())))
    print("alerts:", dict(sorted(seen.alert_kinds().items())),
          " expected:", dict(sorted(traffic.expected_alerts.items())))
    print("dead letters:", dict(sorted(seen.dead_letter_kinds().items())),
          "(bad bytes kept:", all(d["value"] for d in seen.dead_letters), ")")
    print(f"review cases opened: {len(seen.cases)}")
    print("risk decisions:", dict(sorted(seen.decision_kinds().items())),
          " expected at least:", traffic.expected_decisions)
    print("reconciliation breaks:", dict(sorted(seen.break_kinds().items())),
          " expected:", traffic.expected_breaks)


def run_demo(settings: Settings, *, orders: int, timeout_s: float) -> int:
    run_id = f"demo{uuid.uuid4().hex[:8]}"
    run_dir = Path(".demo") / run_id
    run_dir.mkdir(parents=True)
    secret = secrets.token_hex(16)
    traffic = demo_traffic(run_id, orders, secret, settings.partitions)

    for report in create_topics(settings):
        print(f"topic {report.name}: {report.outcome} {report.detail}".rstrip())
    web_port = _free_port()
    worker = _start_worker(run_dir, secret, web_port)
    print(f"worker started (pid {worker.pid}); log in {run_dir / 'worker.log'}")
    deadline = time.monotonic() + timeout_s
    try:
        if not _wait_until_ready(worker, web_port, deadline):
            print(f"worker not ready in time; see {run_dir / 'worker.log'}")
            return 1
        _produce(settings, traffic, run_id)
        print(f"produced {len(traffic.orders)} orders, {len(traffic.callbacks)} signed "
              "callbacks (duplicates, re-sends, forged, stale, short-paid, orphaned, a fraud "
              "ring on one device, one never sent) and 2 undecodable records")
        seen = Readback(run_id, [])
        settled, paced, previous = False, list(traffic.paced), None
        while time.monotonic() < deadline and not seen.matches(traffic):
            if paced and (previous is None or previous in {d["order_id"] for d in seen.decisions}):
                order, callback = paced.pop(0)
                _produce_paced(settings, order, callback)
                previous = order.record["order_id"]
            if not settled and traffic.awaited_order in seen.final_status:
                # The provider's file comes after the order is known, as it would.
                _produce_settlements(settings, traffic)
                settled = True
                print("produced the provider's settlement file (it proves a lost callback)")
            if worker.poll() is not None:
                print(f"worker exited with {worker.returncode}; see {run_dir / 'worker.log'}")
                return 1
            until = min(deadline, time.monotonic() + 15)
            seen = Readback(run_id, read_committed(settings, OUTPUTS, until=until))
    finally:
        _stop_worker(worker)
    _report(run_id, traffic, seen)
    ok = seen.matches(traffic)
    print("result:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1
