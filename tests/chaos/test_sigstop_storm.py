"""Issue 14: a worker SIGSTOPped at random moments, each time longer than the session
timeout, STOPS times in a run: it never exits, and every credit is written exactly once.
TOPUP_CHAOS_SEEDS and TOPUP_CHAOS_STOPS make it a longer soak."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.chaos.harness import SEEDS, Traffic, chaos_env, health, wait_for
from tests.kafka_harness import settings_from

STOPS = int(os.environ.get("TOPUP_CHAOS_STOPS", "10"))
SESSION_TIMEOUT_S = 6


@pytest.mark.parametrize("seed", SEEDS)
def test_a_worker_stopped_at_random_moments_never_exits_and_stays_exactly_once(
    kafka_env, workers, seed
):
    env = chaos_env(kafka_env, SESSION_TIMEOUT_S)
    rng = random.Random(seed)
    worker = workers.start("stopped", **env)
    wait_for("the worker serves", lambda: health(worker) == 200, 120)
    # Traffic for about as long as the storm lasts.
    traffic = Traffic(settings_from(env), seed=seed, slice_size=8, pause_s=0.5).start()
    for _ in range(STOPS):
        time.sleep(rng.uniform(0.2, 2.5))
        worker.process.send_signal(signal.SIGSTOP)
        time.sleep(SESSION_TIMEOUT_S + rng.uniform(0.5, 2.0))
        worker.process.send_signal(signal.SIGCONT)
        assert worker.process.poll() is None, worker.log()

    traffic.assert_exactly_once([worker], timeout_s=180)
    assert worker.process.poll() is None
