"""Issue 14 as the chaos probe found it: the single broker of a development setup stopped
mid-flight for 20 s (controlled shutdown, deploy/kafka/stop), then started. Workers used
to wedge for good. Now /health answers 503 while nothing can commit, SIGTERM ends a worker
within its bound, and the other resumes by itself once the broker is back. A single node
can hang a transaction itself (its partitions have no leader while it leaves; topology.md,
"A hanging transaction"); the check allows that only when Kafka's find-hanging lists it.
Every credit arriving exactly once through an outage is proven on a replicated cluster
(replicated/test_broker_outage.py). The session's broker is always started again."""

from __future__ import annotations

import os
import subprocess
import time

from tests.chaos.cluster import hanging_transactions
from tests.chaos.harness import health, wait_for
from tests.chaos.outage import assert_resumed_unless_kafka_hung, sigterm_ends, start_traffic
from tests.kafka_harness import KAFKA_DIR, TEST_PORT, start_broker


def test_workers_say_so_stop_when_told_and_resume_after_their_broker_restarts(
    kafka_bootstrap, kafka_env, workers
):
    first, second, traffic = start_traffic(kafka_env, workers)
    away_since = time.monotonic()
    subprocess.run([str(KAFKA_DIR / "stop")], env=dict(os.environ, TOPUP_KAFKA_PORT=str(TEST_PORT)),
                   check=True, timeout=120, capture_output=True)
    try:
        wait_for("/health 503 while the broker is away", lambda: health(first) == 503, 18)
        sigterm_ends(second)
        time.sleep(max(0.0, away_since + 20 - time.monotonic()))  # the outage itself
    finally:
        start_broker()
    assert_resumed_unless_kafka_hung(traffic, first,
                                     lambda: hanging_transactions(kafka_bootstrap, (1,)))
