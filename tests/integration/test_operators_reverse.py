"""`topup-guard reverse` against the real worker and broker: one REVERSAL entry for two
identical requests, with the balance corrected (issue 17, item 6)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from streams import topics
from streams.domain.common.ids import entry_id
from tests.builders import order_event, payment_event
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, http, read_until, settings_from, wait_for_http

CLI = str(Path(sys.executable).with_name("topup-guard"))
OUTPUTS = [topics.CREDITS, topics.ORDER_STATUS, topics.AUDIT]
ORDER, KEPT = "o-rev-wrong", "o-rev-kept"


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def latest_status(records, order_id: str) -> str | None:
    history = sorted((s["version"], s["status"]) for s in decode_all(records, topics.ORDER_STATUS)
                     if s["order_id"] == order_id)
    return history[-1][1] if history else None


def balance(worker, account: str, expected: dict) -> tuple:
    """The balances stage's answer, polled until it is `expected` or 30 s passed."""
    url = f"http://127.0.0.1:{worker.web_port}/accounts/{account}/balance"
    deadline, reply = time.monotonic() + 30, ()
    while reply != (200, expected) and time.monotonic() < deadline:
        status, body = http("GET", url)
        reply = (status, json.loads(body) if status == 200 else body)
        time.sleep(0.2)  # polling the endpoint until the balances stage caught up
    return reply


def test_a_credit_reversed_twice_is_reversed_once_and_the_balance_follows(kafka_env, workers):
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS)}
    settings = settings_from(env)
    worker = workers.start(**env)
    flow = Flow(settings)
    for order_id in (ORDER, KEPT):
        flow.order(order_event(order_id, promo_id="welcome", promo_bonus_minor=50))
        flow.callback(payment_event(order_id))
    flow.flush()
    read_until(settings, OUTPUTS,
               lambda rs: all(latest_status(rs, o) == "CREDITED" for o in (ORDER, KEPT)),
               workers=[worker])
    credit_id = entry_id(ORDER, "CREDIT", f"txn-{ORDER}", None)
    reversal_id = entry_id(ORDER, "REVERSAL", f"txn-{ORDER}", None)
    wait_for_http(worker)
    account = f"acct-{ORDER}"
    assert balance(worker, account, {"account_id": account, "balances_minor": {"USD": 1050}})[
        0] == 200

    # Wrong arguments are refused before anything is sent.
    no_by = cli(env, "reverse", credit_id, "--reason", "credited in error")
    assert no_by.returncode == 2 and "--by" in no_by.stderr
    blank = cli(env, "reverse", credit_id, "--by", "ann@ops", "--reason", " ")
    assert blank.returncode == 2 and "--reason must not be empty" in blank.stderr
    unknown = cli(env, "reverse", "le_nope", "--by", "ann@ops", "--reason", "typo")
    assert unknown.returncode == 2 and "no ledger entry 'le_nope'" in unknown.stderr

    sent = cli(env, "reverse", credit_id, "--by", "ann@ops", "--reason", "credited in error",
               "--json")
    assert sent.returncode == 0, sent.stderr
    request = json.loads(sent.stdout)
    assert request["reversal_entry_id"] == reversal_id
    # The identical request again, as a retried command whose answer was lost sends it.
    flow.order(request["event"])
    flow.flush()

    def settled(rs) -> bool:
        stage_audits = [a["action"] for a in decode_all(rs, topics.AUDIT)
                        if a["subject"] == ORDER and a["rule"] in ("order.reversal",
                                                                   "order.dedup")]
        return latest_status(rs, ORDER) == "REVERSED" and len(stage_audits) >= 2

    records = read_until(settings, OUTPUTS, settled, workers=[worker])
    reversals = [c for c in decode_all(records, topics.CREDITS) if c["op"] == "REVERSAL"]
    assert [(r["entry_id"], r["order_id"], r["amount_minor"], r["bonus_minor"], r["reason"])
            for r in reversals] == [(reversal_id, ORDER, 1000, 50, "OPERATOR_REVERSAL")]
    assert latest_status(records, KEPT) == "CREDITED"
    audits = [a for a in decode_all(records, topics.AUDIT) if a["subject"] == ORDER]
    issued = [a for a in audits if a["action"] == "REVERSAL_REQUESTED_ISSUED"]
    assert [(a["actor"], a["inputs"]["reason"]) for a in issued] == [
        ("ann@ops", "credited in error")]
    [booked] = [a for a in audits if a["action"] == "REVERSAL"]
    assert (booked["actor"], booked["outcome"], booked["inputs"]["entry_id"]) == (
        "ann@ops", "BOOKED", reversal_id)
    [duplicate] = [a for a in audits if a["rule"] == "order.dedup"]
    assert duplicate["action"] == "DUPLICATE_IGNORED"

    # Once booked, a further request is refused at the door, and the refusal is audited.
    again = cli(env, "reverse", credit_id, "--by", "bob@ops", "--reason", "again")
    assert again.returncode == 2 and f"already reversed by {reversal_id}" in again.stderr
    def refusals(rs) -> list[tuple[str, str | None]]:
        return sorted((a["subject"], a["actor"]) for a in decode_all(rs, topics.AUDIT)
                      if a["action"] == "REVERSAL_REQUESTED_REFUSED")

    refused = read_until(settings, [topics.AUDIT], lambda rs: len(refusals(rs)) == 2)
    assert refusals(refused) == [("le_nope", "ann@ops"), (ORDER, "bob@ops")]
    # A reversal is not itself reversible.
    not_credit = cli(env, "reverse", reversal_id, "--by", "bob@ops", "--reason", "undo")
    assert not_credit.returncode == 2 and "not a CREDIT" in not_credit.stderr

    expected = {"account_id": account, "balances_minor": {"USD": 0}}
    assert balance(worker, account, expected) == (200, expected)
    kept = {"account_id": f"acct-{KEPT}", "balances_minor": {"USD": 1050}}
    assert balance(worker, f"acct-{KEPT}", kept) == (200, kept)
    final = read_until(settings, [topics.CREDITS], lambda rs: True)
    assert Counter(c["entry_id"] for c in decode_all(final, topics.CREDITS)) == {
        credit_id: 1, reversal_id: 1, entry_id(KEPT, "CREDIT", f"txn-{KEPT}", None): 1}

    # A replay of the inputs decides the reversal as the live run did.
    rebuilt = cli(env, "rebuild", "--verify", "--stores", "order-state,balances", "--json")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert json.loads(rebuilt.stdout)["differences"] == []
