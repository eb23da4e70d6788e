"""Issue 14: the broker stopped mid-flight for 5 s and for 20 s, then started. Workers
resume by themselves within RESUME_BOUND_S of the broker's return, exactly-once intact;
while they are stuck /health answers 503; SIGTERM during the outage ends a worker within
SHUTDOWN_BOUND_S. The session's broker is always started again for later tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.chaos.harness import SEEDS, Traffic, chaos_env, health, wait_for
from tests.kafka_harness import KAFKA_DIR, TEST_PORT, settings_from, start_broker

RESUME_BOUND_S = 150.0
# TOPUP_SHUTDOWN_TIMEOUT_S (15, chaos_env) plus the interpreter's own exit.
SHUTDOWN_BOUND_S = 25.0


def stop_broker() -> None:
    env = dict(os.environ, TOPUP_KAFKA_PORT=str(TEST_PORT))
    subprocess.run([str(KAFKA_DIR / "stop")], env=env, check=True, timeout=120,
                   capture_output=True)


@pytest.mark.parametrize("outage_s", [5, 20])
def test_workers_resume_by_themselves_after_a_broker_outage(kafka_env, workers, outage_s):
    env = chaos_env(kafka_env)
    settings = settings_from(env)
    first = workers.start("first", **env)
    second = workers.start("second", **env)
    wait_for("both workers serve", lambda: health(first) == 200 and health(second) == 200, 120)
    traffic = Traffic(settings, seed=SEEDS[1], slice_size=20, pause_s=0.2).start()
    time.sleep(3)  # mid-flight: batches in progress on both workers

    stop_broker()
    try:
        away_since = time.monotonic()
        if outage_s >= 20:
            wait_for("/health 503 while the broker is away", lambda: health(first) == 503,
                     outage_s - 2)
            second.process.send_signal(signal.SIGTERM)
            term_at = time.monotonic()
            second.process.wait(timeout=SHUTDOWN_BOUND_S)
            assert time.monotonic() - term_at < SHUTDOWN_BOUND_S
        time.sleep(max(0.0, away_since + outage_s - time.monotonic()))
    finally:
        start_broker()

    survivors = [first] if outage_s >= 20 else [first, second]
    took = traffic.assert_exactly_once(survivors, timeout_s=RESUME_BOUND_S)
    assert took < RESUME_BOUND_S
    wait_for("/health 200 again", lambda: health(first) == 200, 30)
