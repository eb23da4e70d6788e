"""Issue 16: local stores survive restarts with a checkpoint, restore only the changelog's
tail, fall back to a full restore when the local copy cannot be trusted, and end with
exactly the committed state even when killed between the commit and the local write."""

from __future__ import annotations

import shutil
import time

import pytest

from streams.runtime import crash_points
from streams.runtime.store import PartitionStore
from tests.integration.flow import Flow
from tests.integration.store_checks import (
    RESTORED,
    assert_stores_hold_the_changelogs,
    changelog_records,
    credits_until,
    pay,
    state_env,
)
from tests.kafka_harness import (
    WorkerProcess,
    http,
    settings_from,
    wait_for_http,
)


def _restored(worker: WorkerProcess, timeout_s: float = 120) -> tuple[int, str]:
    """Records restored by the worker's first assignment, and what it restored fully."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if match := RESTORED.search(worker.log()):
            return int(match.group(1)), match.group(2)
        assert worker.process.poll() is None, worker.log()
        time.sleep(0.2)
    raise AssertionError(f"no restore logged:\n{worker.log()}")


def test_a_restart_restores_only_what_was_written_after_the_checkpoint(
    kafka_env, workers, tmp_path
):
    env = state_env(kafka_env)
    settings = settings_from(env)
    flow = Flow(settings)

    first = workers.start("a", **env)
    expected = pay(flow, 0, 60)
    credits_until(settings, expected, first)
    first.stop()
    before = len(changelog_records(settings))

    # Another worker (its own, empty state) moves the changelogs on while "a" is away.
    other = workers.start("b", **env)
    expected |= pay(flow, 60, 60)
    credits_until(settings, expected, other)
    other.stop()
    after = len(changelog_records(settings))
    assert after > before

    again = workers.start("a", **env)
    restored, full = _restored(again)
    assert (restored, full) == (after - before, "-")
    wait_for_http(again, "/metrics")
    _, body = http("GET", f"http://127.0.0.1:{again.web_port}/metrics")
    [gauge] = [line for line in body.decode().splitlines()
               if line.startswith("topup_restore_records ")]
    assert float(gauge.split()[1]) == after - before

    # The restored state is right: duplicates of every payment credit nothing again.
    expected |= pay(flow, 0, 120) | pay(flow, 120, 1)
    counts = credits_until(settings, expected, again)
    assert set(counts) == expected and max(counts.values()) == 1
    again.stop()
    assert_stores_hold_the_changelogs(settings, tmp_path / "state-a")


@pytest.mark.parametrize("point", [crash_points.AFTER_COMMIT, crash_points.DURING_LOCAL_WRITE])
def test_a_kill_around_the_local_write_ends_with_exactly_the_committed_state(
    kafka_env, workers, tmp_path, point
):
    env = state_env(kafka_env)
    settings = settings_from(env)
    flow = Flow(settings)

    doomed = workers.start("a", **env, TOPUP_TEST_KILL_AT=point,
                           TOPUP_TEST_KILL_AFTER_BATCHES="3")
    expected = pay(flow, 0, 150, twice=True)
    doomed.process.wait(timeout=180)
    assert doomed.process.returncode == -9, doomed.log()

    again = workers.start("a", **env)
    restored, full = _restored(again)
    # The killed batch committed but never reached the store: its tail is replayed.
    assert restored > 0 and full == "-"
    expected |= pay(flow, 0, 150) | pay(flow, 150, 1)
    counts = credits_until(settings, expected, again)
    assert set(counts) == expected and max(counts.values()) == 1
    again.stop()
    assert_stores_hold_the_changelogs(settings, tmp_path / "state-a")


def test_a_corrupt_or_foreign_store_is_detected_and_fully_restored(kafka_env, workers, tmp_path):
    env = state_env(kafka_env)
    settings = settings_from(env)
    flow = Flow(settings)

    first = workers.start("a", **env)
    expected = pay(flow, 0, 60)
    credits_until(settings, expected, first)
    first.stop()

    state = tmp_path / "state-a"
    # The state family's store has no TTL, as the foreign one written below.
    foreign_of, corrupt = "state", "webhook-dedup"
    assert {foreign_of, corrupt} <= {p.name for p in state.iterdir() if (p / "1").is_dir()}
    (state / corrupt / "1" / "CURRENT").write_bytes(b"\x00not a manifest name\n")
    # A store that mirrors another changelog (another app's), where this one's belongs.
    shutil.rmtree(state / foreign_of / "0")
    foreign = PartitionStore(state / foreign_of / "0", None, "another-app-changelog")
    foreign.write([(b"k", b"v")], 5)
    foreign.close()

    again = workers.start("a", **env)
    _, full = _restored(again)
    assert f"-{corrupt}-changelog[1] (store failed to open" in full
    assert f"-{foreign_of}-changelog[0] (foreign store: it mirrors " in full
    expected |= pay(flow, 0, 60) | pay(flow, 60, 1)
    counts = credits_until(settings, expected, again)
    assert set(counts) == expected and max(counts.values()) == 1
    again.stop()
    assert_stores_hold_the_changelogs(settings, state)
