"""`topup-guard trace` as an operator runs it, against the real worker and broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from streams import topics
from streams.domain.common.ids import entry_id
from tests.builders import NOW_MS, batch_closed, order_event, settlement_line
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from

CLI = str(Path(sys.executable).with_name("topup-guard"))
HOUR = 3_600_000


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def test_trace_of_a_reconciled_order_shows_the_lost_callback_made_good(kafka_env, workers):
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS)}
    settings = settings_from(env)
    worker = workers.start(**env)
    flow = Flow(settings)
    order_id = "o-trace-lost"
    flow.order(order_event(order_id), "corr-trace")  # its callback never arrives
    settled = NOW_MS + HOUR
    flow.settlement(settlement_line("r-trace", "b-trace", order_id, 1000, settled))
    flow.settlement(batch_closed("b-trace", lines=1, total=1000, at=NOW_MS + 3 * HOUR,
                                 covers_until=NOW_MS + HOUR))
    flow.flush()
    read_until(settings, [topics.CREDITS],
               lambda rs: any(c["order_id"] == order_id for c in decode_all(rs, topics.CREDITS)),
               workers=[worker])

    done = cli(env, "trace", "--json", order_id)
    assert done.returncode == 0, done.stderr
    evidence = json.loads(done.stdout)["evidence"]
    kinds = [item["kind"] for item in evidence]
    # No callback at all: the credit came from the settlement line, through the break.
    assert "CALLBACK" not in kinds
    chain = ["ORDER_CREATED", "SETTLEMENT_LINE", "BREAK_MISSING_CREDIT", "LEDGER_CREDIT"]
    positions = [kinds.index(kind) for kind in chain]
    assert positions == sorted(positions), kinds
    [found] = [item for item in evidence if item["kind"] == "BREAK_MISSING_CREDIT"]
    assert found["details"]["action"] == "AUTO_CORRECTED"
    [credit] = [item for item in evidence if item["kind"] == "LEDGER_CREDIT"]
    # Reconciliation's credit goes the callback's way, with the callback's entry id.
    assert credit["details"]["entry_id"] == entry_id(order_id, "CREDIT", f"txn-{order_id}", None)
    as_of = [e["as_of"] for e in evidence]
    assert as_of == sorted(as_of)
    assert evidence[0]["correlation_id"] == "corr-trace"
    assert "BREAK_MISSING_CREDIT" not in kinds[kinds.index("LEDGER_CREDIT"):]
    human = cli(env, "trace", order_id).stdout
    assert "MISSING_CREDIT -> AUTO_CORRECTED" in human

    account = json.loads(cli(env, "trace", "--json", "--account", f"acct-{order_id}").stdout)
    assert account["balance"] == {"USD": 1000}
    assert [e["entry_id"] for e in account["entries"]] == [credit["details"]["entry_id"]]
    missing = cli(env, "trace", "o-never-seen")
    assert missing.returncode == 2 and "no record of order" in missing.stderr
