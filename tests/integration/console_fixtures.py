"""A worker with the console on, and held orders for it to show (shared by the HTTP and
the browser tests of the console)."""

from __future__ import annotations

from dataclasses import dataclass

from streams import topics
from streams.config import Settings
from tests.builders import order_event, payment_event
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import (
    WorkerFactory,
    WorkerProcess,
    decode_all,
    read_until,
    settings_from,
    wait_for_http,
)

TOKEN = "console-test-token-7f3a"
OUTPUTS = [topics.CREDITS, topics.ORDER_STATUS, topics.REVIEW_CASES, topics.AUDIT]
# An order id as hostile as the wire may send: it must show as text, never as markup.
HOSTILE = "o-<b>x</b>&\"q"


@dataclass
class Console:
    settings: Settings
    worker: WorkerProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.worker.web_port}/console"


def statuses(records) -> dict[str, str]:
    latest: dict[str, tuple[int, str]] = {}
    for change in decode_all(records, topics.ORDER_STATUS):
        if change["version"] > latest.get(change["order_id"], (0, ""))[0]:
            latest[change["order_id"]] = (change["version"], change["status"])
    return {order_id: status for order_id, (_, status) in latest.items()}


def console_with_held_orders(
    kafka_env: dict[str, str], workers: WorkerFactory, held: dict[str, int]
) -> Console:
    """A worker serving the console, once each order in `held` (order id -> amount, paid
    2% short) is ON_HOLD with its review case open."""
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS),
           "TOPUP_CONSOLE_TOKEN": TOKEN}
    settings = settings_from(env)
    worker = workers.start(**env)
    flow = Flow(settings)
    for order_id, amount in held.items():
        flow.order(order_event(order_id, amount_minor=amount))
        flow.callback(payment_event(order_id, amount=amount * 98 // 100))
    flow.flush()
    read_until(settings, OUTPUTS,
               lambda rs: len(decode_all(rs, topics.REVIEW_CASES)) == len(held)
               and all(statuses(rs).get(o) == "ON_HOLD" for o in held), workers=[worker])
    wait_for_http(worker)
    return Console(settings, worker)


def console_after_demo_workload(
    kafka_env: dict[str, str], workers: WorkerFactory
) -> tuple[Console, set[str]]:
    """A worker serving the console after the demo's workload (`deploy/demo`'s generator,
    without its paced fraud ring); with the orders that hold an open review case."""
    from streams.demo import _produce as produce_demo_workload  # the demo's own producer
    from streams.workload import demo_traffic

    secret = "demo-console-secret-0123456789ab"
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": secret, "TOPUP_ORPHAN_HOLD_S": "10",
           "TOPUP_CONSOLE_TOKEN": TOKEN}
    settings = settings_from(env)
    worker = workers.start(**env)
    wait_for_http(worker)
    traffic = demo_traffic("demo", 60, secret, settings.partitions)
    paced = {order.record["order_id"] for order, _ in traffic.paced}
    held = {order_id for order_id, status in traffic.expected_status.items()
            if status == "ON_HOLD" and order_id not in paced}
    assert held, "the demo's workload holds no order for review any more"
    produce_demo_workload(settings, traffic, "demo")
    # The risk verdict may be recorded after the hold: the queue shows both, so wait for both.
    records = read_until(
        settings, [*OUTPUTS, topics.RISK_DECISIONS],
        lambda rs: held <= {c["order_id"] for c in decode_all(rs, topics.REVIEW_CASES)}
        and held <= {d["order_id"] for d in decode_all(rs, topics.RISK_DECISIONS)}
        and all(statuses(rs).get(o) == "ON_HOLD" for o in held), workers=[worker])
    cased = {c["order_id"] for c in decode_all(records, topics.REVIEW_CASES)}
    return Console(settings, worker), cased & held
