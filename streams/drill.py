"""Incident drills: reproduce an incident against a broker and print what an operator
would see (the output topics read with read_committed, and the worker's /metrics).

`deploy/drill <incident>` runs one against $KAFKA_BOOTSTRAP_SERVERS (the demo's broker by
default). Each drill starts its own worker with a fresh app id and state, so it never
touches a running system's consumer group, and exits non-zero if the end state the
runbook states is not reached.

Drills that need the operators' tools (freeze, reverse, rebuild) or a duplicate injected
past the state machine are not here yet: see docs/runbooks/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streams import topics
from streams.codecs import default_catalog
from streams.config import load_settings
from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.kafka_clients import producer, read_committed
from streams.providers.testing import SignedDelivery, make_hmac_delivery

DRILL_SECRET = "drill-secret"
FORGERIES = 20
DRIFTED = 5


def _http(method: str, url: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Ports:
    operator: int  # /health, /metrics, balances
    webhook: int  # POST /webhooks/{provider}, what providers reach


def _start_worker(env: dict[str, str], state: Path) -> tuple[subprocess.Popen, Ports]:
    ports = Ports(operator=_free_port(), webhook=_free_port())
    merged = {**env, "TOPUP_STATE_DIR": str(state), "TOPUP_WEB_PORT": str(ports.operator),
              "TOPUP_WEBHOOK_HOST": "127.0.0.1", "TOPUP_WEBHOOK_PORT": str(ports.webhook)}
    log = (state.parent / "worker.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=merged,
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"drill: worker exited:\n{(state.parent / 'worker.log').read_text()}")
        try:
            if _http("GET", f"http://127.0.0.1:{ports.operator}/health")[0] == 200:
                return process, ports
        except OSError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise SystemExit("drill: worker not ready within 90s")


def forged_callbacks(env: dict[str, str], ports: Ports) -> dict[str, int]:
    """Webhook endpoint under forged callbacks: every one is accepted at the door (the
    endpoint stores, intake verifies), then refused: dead-lettered as SIGNATURE_INVALID,
    one SIGNATURE_INVALID alert each, and no payment reaches an order."""
    url = f"http://127.0.0.1:{ports.webhook}/webhooks/hmac"
    run = uuid.uuid4().hex[:6]
    for n in range(FORGERIES):
        event = PaymentEvent(
            provider="hmac", event_id=f"drill-{run}-{n}", external_txn_id=f"txn-{run}-{n}",
            order_id=f"drill-order-{run}-{n}", kind=PaymentKind.PAYMENT_SUCCEEDED,
            amount_minor=1000, currency="USD", merchant_id="merchant-hmac", app_id=None,
            occurred_at=int(time.time() * 1000),
        )
        # Signed with a secret the worker does not hold.
        forged = make_hmac_delivery(event, "a-guessed-secret", timestamp=int(time.time()))
        status, reply = _http("POST", url, forged.body, {
            "Content-Type": "application/json",
            "X-TopUp-Signature": forged.headers["x-topup-signature"]})
        if status != 202:
            raise SystemExit(f"drill: endpoint answered {status}: {reply!r}")
    settings = load_settings(env)
    catalog = default_catalog()

    def seen() -> tuple[list[dict], list[dict], list[dict]]:
        records = read_committed(settings, [topics.DLQ, topics.ALERTS, topics.PAYMENTS],
                                 until=time.monotonic() + 20, idle_s=1.0)
        by_topic: dict[str, list[dict]] = {topics.DLQ: [], topics.ALERTS: [], topics.PAYMENTS: []}
        for record in records:
            name = topics.BY_NAME[record.topic].record
            by_topic[record.topic].append(catalog.decode(name, record.value))
        return by_topic[topics.DLQ], by_topic[topics.ALERTS], by_topic[topics.PAYMENTS]

    deadline = time.monotonic() + 60
    while True:
        dead, alerts, payments = seen()
        if len(dead) >= FORGERIES or time.monotonic() > deadline:
            break
    metrics = _http("GET", f"http://127.0.0.1:{ports.operator}/metrics")[1].decode()
    print("== what the operator sees ==")
    print(f"topup.dlq: {len(dead)} dead letters, kinds {sorted({d['error_kind'] for d in dead})}")
    print(f"topup.alerts: {len(alerts)} alerts, kinds {sorted({a['kind'] for a in alerts})}")
    print(f"topup.internal.payments: {len(payments)} verified payments")
    print("/metrics:")
    for line in metrics.splitlines():
        if line.startswith(("topup_webhooks_rejected_total", "topup_webhook_http_total")):
            print("  " + line)
    print("alert that fires: WebhookSignaturesFailing; runbook: "
          "docs/runbooks/webhook-endpoint-failing.md")
    return {
        "dead_letters": sum(d["error_kind"] == "SIGNATURE_INVALID" for d in dead),
        "alerts": sum(a["kind"] == "SIGNATURE_INVALID" for a in alerts),
        "payments": len(payments),
    }


def amount_drift(env: dict[str, str], ports: Ports) -> dict[str, int]:
    """One merchant's checkout charges less than the order: each payment is held
    (ON_HOLD, AMOUNT_MISMATCH alert, a review case) and nothing is credited."""
    settings = load_settings(env)
    catalog = default_catalog()
    run = uuid.uuid4().hex[:6]
    now = int(time.time() * 1000)
    orders = [f"drift-{run}-{n}" for n in range(DRIFTED)]
    kafka = producer(settings)
    for order_id in orders:
        kafka.produce(topics.ORDERS, key=order_id, value=catalog.encode("OrderEvent", {
            "event_id": f"{order_id}-created", "type": "CREATED", "order_id": order_id,
            "occurred_at": now, "account_id": f"acct-{order_id}", "user_id": f"u-{order_id}",
            "amount_minor": 1000, "currency": "USD", "provider": "hmac",
            "merchant_id": "merchant-drift",
        }), headers=[("correlation_id", f"corr-{order_id}".encode())])
    if kafka.flush(30) != 0:
        raise SystemExit("drill: orders not delivered")
    for order_id in orders:
        paid = PaymentEvent(
            provider="hmac", event_id=f"evt-{order_id}", external_txn_id=f"txn-{order_id}",
            order_id=order_id, kind=PaymentKind.PAYMENT_SUCCEEDED, amount_minor=980,
            currency="USD", merchant_id="merchant-drift", app_id=None, occurred_at=now,
        )
        _post(ports.webhook, make_hmac_delivery(paid, DRILL_SECRET, timestamp=int(time.time())))
    wanted = set(orders)
    deadline = time.monotonic() + 90
    while True:
        records = read_committed(settings, [topics.ALERTS, topics.ORDER_STATUS, topics.CREDITS],
                                 until=time.monotonic() + 20, idle_s=1.0)
        alerts = [catalog.decode("Alert", r.value) for r in records if r.topic == topics.ALERTS]
        status: dict[str, str] = {}
        for r in records:
            if r.topic == topics.ORDER_STATUS:
                change = catalog.decode(topics.BY_NAME[r.topic].record, r.value)
                status[change["order_id"]] = change["status"]
        credits = [r for r in records if r.topic == topics.CREDITS
                   and catalog.decode("LedgerEntry", r.value)["order_id"] in wanted]
        mismatched = {a["order_id"] for a in alerts if a["kind"] == "AMOUNT_MISMATCH"} & wanted
        held = {o for o in wanted if status.get(o) == "ON_HOLD"}
        if (len(mismatched) == len(held) == DRIFTED) or time.monotonic() > deadline:
            break
    metrics = _http("GET", f"http://127.0.0.1:{ports.operator}/metrics")[1].decode()
    print("== what the operator sees ==")
    print(f"topup.alerts: {len(mismatched)} AMOUNT_MISMATCH for merchant-drift orders")
    print(f"topup.order-status: {len(held)} of {DRIFTED} orders ON_HOLD")
    print(f"topup.credits: {len(credits)} credits for them")
    for line in metrics.splitlines():
        if line.startswith(("topup_alerts_total", "topup_holds_total")):
            print("  " + line)
    print("alert that fires: MismatchRateRising (with intake lag: IntakeLagAndMismatchRising);"
          " runbook: docs/runbooks/amount-currency-mismatch.md")
    return {"mismatch_alerts": len(mismatched), "held": len(held), "credits": len(credits)}


def _expect_drift(state: dict[str, int]) -> bool:
    return state == {"mismatch_alerts": DRIFTED, "held": DRIFTED, "credits": 0}


def _post(port: int, delivery: SignedDelivery) -> None:
    status, reply = _http("POST", f"http://127.0.0.1:{port}/webhooks/hmac", delivery.body, {
        "Content-Type": "application/json",
        "X-TopUp-Signature": delivery.headers["x-topup-signature"]})
    if status != 202:
        raise SystemExit(f"drill: endpoint answered {status}: {reply!r}")


def _expect_forged(state: dict[str, int]) -> bool:
    return (state["dead_letters"] == FORGERIES and state["alerts"] == FORGERIES
            and state["payments"] == 0)


DRILLS: dict[str, tuple[Callable[[dict[str, str], Ports], dict[str, int]],
                        Callable[[dict[str, int]], bool]]] = {
    "webhook-endpoint-failing": (forged_callbacks, _expect_forged),
    "amount-currency-mismatch": (amount_drift, _expect_drift),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/drill", description=__doc__.splitlines()[0])
    parser.add_argument("incident", choices=sorted(DRILLS))
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    # Its own group, changelogs and secret: the drill never joins a running system's group.
    env["TOPUP_APP_ID"] = f"topup-drill-{uuid.uuid4().hex[:8]}"
    env["TOPUP_HMAC_SECRETS"] = DRILL_SECRET
    run, expected = DRILLS[args.incident]
    with tempfile.TemporaryDirectory(prefix="topup-drill-") as tmp:
        process, ports = _start_worker(env, Path(tmp) / "state")
        try:
            state = run(env, ports)
        finally:
            process.terminate()
            process.wait(timeout=30)
    ok = expected(state)
    print(f"end state: {state}: {'as the runbook states' if ok else 'NOT as the runbook states'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
