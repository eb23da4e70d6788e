"""The runtime's timers through the whole topology: a deadline on a quiet partition passes
by the runtime's ticks, and a replay of the same records decides the same."""

from __future__ import annotations

import random
from pathlib import Path

from bench.worker_process import RULES
from bench.workload import SECRET, order_and_callback
from streams import topics
from streams.codecs import default_catalog
from streams.config import load_settings
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.runtime.testing import TopologyTestDriver
from streams.topology import all_stages
from streams.worker_config import runtime_config

CATALOG = default_catalog()
HOLD_MS = 60_000


def run(state_dir: Path) -> tuple[list[str], list[tuple[str, bytes | None, bytes | None]]]:
    """A payment whose order never comes, then the quiet partition's ticks: the alerts
    after each tick, and every output as sent."""
    settings = load_settings({"TOPUP_STATE_DIR": str(state_dir), "TOPUP_HMAC_SECRETS": SECRET,
                              "TOPUP_RISK_RULES": str(RULES),
                              "TOPUP_ORPHAN_HOLD_S": str(HOLD_MS // 1000)})
    metrics = Metrics()
    stages = all_stages(settings, CATALOG, metrics)
    with TopologyTestDriver(runtime_config(settings), stages, CATALOG, metrics) as driver:
        order, callback = order_and_callback("quiet", 0, random.Random(3))
        driver.pipe(topics.WEBHOOKS, b"any", CATALOG.encode("WebhookDelivery", callback),
                    callback["received_at"])
        partition = partition_for(order["order_id"].encode(), driver.partitions)
        at = callback["received_at"]
        seen = []
        for advance in (HOLD_MS // 2, HOLD_MS // 2, 1):
            at += advance
            driver.tick(partition, advance, at)
            seen.append(",".join(a["kind"] for a in driver.read_values(topics.ALERTS)))
        outputs = [(send.topic, send.key, send.value)
                   for topic in sorted(driver.sent) for send in driver.read_output(topic)]
    return seen, outputs


def test_an_orphan_on_a_quiet_partition_is_alerted_by_ticks_and_a_replay_decides_the_same(
    tmp_path: Path
) -> None:
    seen, outputs = run(tmp_path / "live")
    # The hold is inclusive: the alert comes with the first tick past it, not before.
    assert seen == ["", "", "ORPHAN_PAYMENT"]
    assert run(tmp_path / "replay") == (seen, outputs)
