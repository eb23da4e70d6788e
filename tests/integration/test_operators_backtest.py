"""`topup-guard backtest` on what a real worker recorded: the report, and writes to its
shadow topic only."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from streams import topics
from streams.codecs import default_catalog
from streams.kafka_clients import read_committed
from streams.ops.scan import end_offsets
from tests.builders import NOW_MS, order_event
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.integration.risk_env import RULES
from tests.kafka_harness import decode_all, read_until, settings_from

CLI = str(Path(sys.executable).with_name("topup-guard"))
MINUTE = 60_000


def test_backtest_reports_the_changed_decisions_and_writes_only_its_shadow(
    kafka_env, workers, tmp_path
):
    current = tmp_path / "rules.yaml"
    current.write_text(RULES)
    # New rules: a large top-up is worth 70 points, not 50: STEP_UP becomes REVIEW.
    new = tmp_path / "new.yaml"
    new.write_text(RULES.replace('"test-1"', '"test-2"').replace("points: 50", "points: 70"))
    env = {**kafka_env, "TOPUP_RISK_RULES": str(current),
           "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS)}
    settings = settings_from(env)
    worker = workers.start(**env)
    flow = Flow(settings)
    amounts = {"o-bt-1": 1000, "o-bt-2": 2000, "o-bt-3": 3000, "o-bt-big-1": 200_000,
               "o-bt-big-2": 300_000}
    for index, (order_id, amount) in enumerate(amounts.items()):
        flow.order(order_event(order_id, at=NOW_MS + index * MINUTE, amount_minor=amount))
    flow.flush()
    read_until(settings, [topics.RISK_DECISIONS],
               lambda rs: len(decode_all(rs, topics.RISK_DECISIONS)) == len(amounts),
               workers=[worker])
    live = [t for t in topics.BY_NAME if not t.startswith("topup.internal.")]
    before = end_offsets(settings, live)

    done = subprocess.run([CLI, "backtest", "--rules", str(new), "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["matrix"] == {"ALLOW": {"ALLOW": 3}, "STEP_UP": {"REVIEW": 2}}
    assert report["fidelity"] == {"same": 5, "different": 0}
    assert {c["order_id"] for c in report["changed"]} == {"o-bt-big-1", "o-bt-big-2"}
    assert report["amount_changed_minor"] == {"USD": 500_000}
    assert report["rule_hits"] == {}  # the same rule fires, worth more points
    assert end_offsets(settings, live) == before
    # The new rules' decisions went to this run's shadow topic, and only there.
    shadow = report["shadow_topic"]
    assert shadow.startswith(f"{topics.RISK_DECISIONS}.shadow.")
    assert report["shadow_records"] == len(amounts)
    written = read_committed(settings, [shadow], until=time.monotonic() + 30, idle_s=1.0,
                             min_records=len(amounts))
    catalog = default_catalog()
    shadowed = {r.key.decode(): catalog.decode("RiskDecision", r.value) for r in written}
    assert {o: d["decision"] for o, d in shadowed.items()} == {
        "o-bt-1": "ALLOW", "o-bt-2": "ALLOW", "o-bt-3": "ALLOW",
        "o-bt-big-1": "REVIEW", "o-bt-big-2": "REVIEW"}
    assert all(d["rules_version"].startswith("test-2") for d in shadowed.values())
    human = subprocess.run([CLI, "backtest", "--rules", str(new), "--since", str(NOW_MS)],
                           env=env, capture_output=True, text=True, timeout=120).stdout
    assert "2 orders change decision (500000 USD)" in human
