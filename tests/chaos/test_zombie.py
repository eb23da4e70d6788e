"""Issue 14: a worker frozen between send_offsets_to_transaction and commit_transaction,
longer than the session timeout, while another worker takes over its partitions. Whether
the zombie then resumes (its late commit may land) or dies, every expected credit is
written exactly once: the new owner restores only from stable committed state."""

from __future__ import annotations

import signal
import time

import pytest

from streams.runtime.worker import TEST_STOP_BEFORE_COMMIT
from tests.chaos.harness import SEEDS, Traffic, chaos_env, in_log, is_stopped, wait_for
from tests.kafka_harness import settings_from


@pytest.mark.parametrize("session_timeout_s", [6, 10])
@pytest.mark.parametrize("zombie_fate", ["resumes", "dies"])
def test_a_zombies_late_commit_loses_no_credit(kafka_env, workers, session_timeout_s,
                                               zombie_fate):
    zombie_takeover(kafka_env, workers, session_timeout_s, zombie_fate, "classic")


@pytest.mark.parametrize("zombie_fate", ["resumes", "dies"])
def test_a_zombies_late_commit_loses_no_credit_under_kip848(kafka_env, workers, zombie_fate):
    """The same under incremental rebalancing: the group fences the frozen member by its
    session (set on the group) and its member epoch."""
    zombie_takeover(kafka_env, workers, 6, zombie_fate, "consumer")


def zombie_takeover(kafka_env, workers, session_timeout_s: int, zombie_fate: str,
                    group_protocol: str) -> None:
    # A resuming zombie's transaction must still be open when it resumes, so that its
    # late commit lands after the takeover: the broker's abort comes later than that.
    env = chaos_env(kafka_env, session_timeout_s, TOPUP_TRANSACTION_TIMEOUT_S=(
        str(session_timeout_s + 20) if zombie_fate == "resumes" else "10"),
        TOPUP_GROUP_PROTOCOL=group_protocol)
    # The frozen batch holds orders; their payments arrive only after the takeover, so
    # they need the order states the zombie's late commit wrote.
    traffic = Traffic(settings_from(env), seed=SEEDS[0], hold_callbacks=True).start()
    zombie = workers.start("zombie", **env, **{TEST_STOP_BEFORE_COMMIT: "3"})
    wait_for("the zombie froze before commit_transaction", lambda: is_stopped(zombie), 120)
    frozen_at = time.monotonic()

    successor = workers.start("successor", **env)
    # The successor is given the partitions once the zombie's session expired; the
    # payments flow to it at once, while the zombie is still frozen.
    wait_for("the successor was given the partitions",
             in_log(successor, "assignment of"), session_timeout_s + 60)
    traffic.release()
    time.sleep(max(3.0, frozen_at + session_timeout_s + 2 - time.monotonic()))
    if zombie_fate == "resumes":
        zombie.process.send_signal(signal.SIGCONT)
        alive = [zombie, successor]
    else:
        zombie.kill()
        alive = [successor]

    traffic.assert_exactly_once(alive, timeout_s=180)
