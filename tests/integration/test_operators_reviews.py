"""The review queue through the operator's CLI, against the real worker and broker."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from streams import topics
from tests.builders import order_event, payment_event
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from

CLI = str(Path(sys.executable).with_name("topup-guard"))
OUTPUTS = [topics.CREDITS, topics.ORDER_STATUS, topics.REVIEW_CASES, topics.AUDIT]


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def statuses(records) -> dict[str, str]:
    latest: dict[str, tuple[int, str]] = {}
    for change in decode_all(records, topics.ORDER_STATUS):
        if change["version"] > latest.get(change["order_id"], (0, ""))[0]:
            latest[change["order_id"]] = (change["version"], change["status"])
    return {order_id: status for order_id, (_, status) in latest.items()}


def test_reviews_are_listed_and_decided_once_through_the_cli(kafka_env, workers):
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS)}
    settings = settings_from(env)
    worker = workers.start(**env)
    flow = Flow(settings)
    short = ("o-rv-approve", "o-rv-reject")
    for order_id in short:  # paid 98 of 100: held for a human
        flow.order(order_event(order_id, amount_minor=100))
        flow.callback(payment_event(order_id, amount=98))
    flow.flush()
    read_until(settings, OUTPUTS,
               lambda rs: len(decode_all(rs, topics.REVIEW_CASES)) == 2
               and all(statuses(rs).get(o) == "ON_HOLD" for o in short), workers=[worker])

    listed = json.loads(cli(env, "reviews", "--json").stdout)
    case_of = {case["order_id"]: case["case_id"] for case in listed}
    assert set(case_of) == set(short)
    assert all(case["evidence"] and case["open"] for case in listed)

    approved = cli(env, "review", "approve", case_of["o-rv-approve"], "--by", "ann@risk",
                   "--note", "customer confirmed the fee")
    assert approved.returncode == 0, approved.stderr
    rejected = cli(env, "review", "reject", case_of["o-rv-reject"], "--by", "ann@risk",
                   "--note", "card testing")
    assert rejected.returncode == 0, rejected.stderr
    again = cli(env, "review", "approve", case_of["o-rv-approve"], "--by", "bob@risk",
                "--note", "twice")
    assert again.returncode == 2 and "already decided" in again.stderr
    unknown = cli(env, "review", "approve", "case-nope", "--by", "bob@risk", "--note", "x")
    assert unknown.returncode == 2 and "no review case" in unknown.stderr

    done = read_until(settings, OUTPUTS,
                      lambda rs: statuses(rs).get("o-rv-approve") == "CREDITED"
                      and statuses(rs).get("o-rv-reject") in {"FAILED", "CANCELED"},
                      workers=[worker])
    assert Counter(c["order_id"] for c in decode_all(done, topics.CREDITS)) == {
        "o-rv-approve": 1}
    notes = {a["inputs"]["note"]: a["actor"] for a in decode_all(done, topics.AUDIT)
             if "note" in a["inputs"]}
    assert notes == {"customer confirmed the fee": "ann@risk", "card testing": "ann@risk"}
    assert json.loads(cli(env, "reviews", "--json").stdout) == []
