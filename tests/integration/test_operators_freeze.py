"""Containment through the operator's CLI, against the real worker and broker.

The CLI runs as a subprocess (`.venv/bin/topup-guard ...`), the way an operator runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from streams import topics
from tests.builders import NOW_MS, order_event, payment_event
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from

CLI = str(Path(sys.executable).with_name("topup-guard"))
MINUTE = 60_000
OUTPUTS = [topics.CREDITS, topics.ORDER_STATUS, topics.ALERTS, topics.AUDIT]


@pytest.fixture
def ops_env(kafka_env):
    return {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS)}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def final_status(records, order_id: str) -> str | None:
    history = sorted((s["version"], s["status"]) for s in decode_all(records, topics.ORDER_STATUS)
                     if s["order_id"] == order_id)
    return history[-1][1] if history else None


def audited(records, subject: str, action: str) -> list[dict]:
    return [a for a in decode_all(records, topics.AUDIT)
            if a["subject"] == subject and a["action"] == action]


def pay(flow: Flow, order_id: str, at: int, **fields: str) -> None:
    flow.order(order_event(order_id, at=at, **fields))
    flow.callback(payment_event(order_id, at=at))


def test_freeze_and_unfreeze_through_the_cli_hold_and_release_credits_once(ops_env, workers):
    settings = settings_from(ops_env)
    worker = workers.start(**ops_env)
    frozen, free = "o-cli-frozen", "o-cli-free"
    scope = f"account:acct-{frozen}"

    done = cli(ops_env, "freeze", "--scope", f" {scope} ", "--what", "credits",
               "--by", "alice@ops", "--reason", "chargeback wave")
    assert done.returncode == 0, done.stderr
    assert json.loads(cli(ops_env, "freeze", "--json", "--scope", scope, "--what", "refunds",
                          "--by", "alice@ops", "--reason", "hold refunds too").stdout)["scope"] \
        == scope
    # The control stage audits the command once it has broadcast it to every partition.
    read_until(settings, [topics.AUDIT],
               lambda rs: len(audited(rs, scope, "FREEZE_CREDITS")) == 1, workers=[worker])
    listed = json.loads(cli(ops_env, "freezes", "--json").stdout)
    assert {(f["scope"], f["what"], f["frozen_by"]) for f in listed} == {
        (scope, "credits", "alice@ops"), (scope, "refunds", "alice@ops")}
    assert "chargeback wave" in cli(ops_env, "freezes").stdout

    again = cli(ops_env, "freeze", "--scope", scope, "--what", "credits",
                "--by", "bob@ops", "--reason", "again")
    assert again.returncode == 2 and "already frozen" in again.stderr

    flow = Flow(settings)
    pay(flow, frozen, NOW_MS + MINUTE)
    pay(flow, free, NOW_MS + MINUTE)
    flow.flush()
    held = read_until(settings, OUTPUTS,
                      lambda rs: final_status(rs, frozen) == "ON_HOLD"
                      and final_status(rs, free) == "CREDITED", workers=[worker])
    assert [c["order_id"] for c in decode_all(held, topics.CREDITS)] == [free]

    done = cli(ops_env, "unfreeze", "--scope", scope, "--what", "credits",
               "--by", "alice@ops", "--reason", "cleared")
    assert done.returncode == 0, done.stderr
    released = read_until(settings, OUTPUTS,
                          lambda rs: final_status(rs, frozen) == "CREDITED", workers=[worker])
    assert Counter(c["order_id"] for c in decode_all(released, topics.CREDITS)) == {
        frozen: 1, free: 1}
    [unfreeze_audit] = audited(released, scope, "UNFREEZE_CREDITS")
    assert (unfreeze_audit["actor"], unfreeze_audit["inputs"]["reason"]) == ("alice@ops", "cleared")
    assert [f["what"] for f in json.loads(cli(ops_env, "freezes", "--json").stdout)] == [
        "refunds"]
    nothing = cli(ops_env, "unfreeze", "--scope", scope, "--what", "credits",
                  "--by", "alice@ops", "--reason", "twice")
    assert nothing.returncode == 2 and "not frozen" in nothing.stderr


def test_bad_scopes_are_refused_with_an_alert_and_a_normalised_one_holds(ops_env, workers):
    settings = settings_from(ops_env)
    refused_by_cli = cli(ops_env, "freeze", "--scope", "provider:paypal", "--what", "credits",
                         "--by", "alice@ops", "--reason", "typo")
    assert refused_by_cli.returncode == 2 and "unknown provider" in refused_by_cli.stderr
    # Commands produced by hand, as before the CLI existed, still reach the control stage.
    flow = Flow(settings)
    # stripe is known but not configured here (only HMAC secrets): its freeze holds nothing.
    bad = {"cmd-bad-provider": "provider:paypal", "cmd-bad-kind": "acct:a-1",
           "cmd-bad-empty": "merchant: ", "cmd-bad-space": "account:a 1",
           "cmd-unconfigured": "provider:stripe"}
    for command_id, scope in bad.items():
        flow.control("FREEZE_CREDITS", scope, command_id, NOW_MS)
    flow.control("FREEZE_CREDITS", "provider:HMAC ", "cmd-good", NOW_MS)
    flow.flush()
    worker = workers.start(**ops_env)
    read_until(settings, [topics.AUDIT], lambda rs: len(decode_all(rs, topics.AUDIT)) >= 6,
               workers=[worker])
    pay(flow, "o-hmac-held", NOW_MS + MINUTE)
    flow.flush()
    records = read_until(settings, OUTPUTS,
                         lambda rs: final_status(rs, "o-hmac-held") == "ON_HOLD",
                         workers=[worker])

    alerts = [a for a in decode_all(records, topics.ALERTS)
              if a["kind"] == "CONTROL_COMMAND_REFUSED"]
    assert {a["details"]["command_id"]: a["details"]["scope"] for a in alerts} == bad
    assert all(a["details"]["why"] for a in alerts)
    audits = {a["inputs"]["command_id"]: a for a in decode_all(records, topics.AUDIT)
              if a["rule"] == "operator-command"}
    for command_id in bad:
        assert audits[command_id]["outcome"].startswith("refused: ")
    assert "expected one of ['hmac']" in audits["cmd-unconfigured"]["outcome"]
    good = audits["cmd-good"]
    assert (good["subject"], good["inputs"]["scope_as_issued"]) == ("provider:hmac",
                                                                     "provider:HMAC ")
    assert good["outcome"].startswith("broadcast")
    assert decode_all(records, topics.CREDITS) == []
