"""Issue 14, supervision: a worker killed mid-batch and started again by a supervisor
(here a loop with the semantics of deploy/systemd/topup-guard.service: Restart=always,
RestartSec=1) keeps exactly-once."""

from __future__ import annotations

import threading
import time

from tests.chaos.harness import SEEDS, Traffic, chaos_env, in_log, wait_for
from tests.kafka_harness import WorkerFactory, WorkerProcess, settings_from

KILLS = 3
RESTART_SEC = 1.0


class Supervisor:
    """Starts the worker again whenever it exits, like Restart=always."""

    def __init__(self, factory: WorkerFactory, env: dict[str, str]) -> None:
        self.factory, self.env = factory, env
        self.current: WorkerProcess = factory.start("supervised", **env)
        self.restarts = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            if self.current.process.poll() is not None:
                time.sleep(RESTART_SEC)
                # Same name, same state dir and transactional id: a restart, not a new worker.
                self.current = self.factory.start("supervised", **self.env)
                self.restarts += 1
            time.sleep(0.1)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def test_a_worker_killed_mid_batch_and_restarted_by_its_supervisor_stays_exactly_once(
    kafka_env, workers
):
    env = chaos_env(kafka_env)
    traffic = Traffic(settings_from(env), seed=SEEDS[0], slice_size=20, pause_s=0.2).start()
    supervisor = Supervisor(workers, env)
    try:
        for kill in range(KILLS):
            worker = supervisor.current
            # Mid-batch: once it processes, a moment after a transaction began.
            wait_for("the worker processes", in_log(worker, "assigned"), 90)
            time.sleep(0.5 + kill * 0.7)
            worker.kill()
            wait_for("the supervisor restarted it", lambda w=worker: supervisor.current is not w,
                     30)
        traffic.assert_exactly_once([], timeout_s=180)
    finally:
        supervisor.stop()
    assert supervisor.restarts == KILLS
