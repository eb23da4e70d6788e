"""Issue 16, item 2: incremental rebalancing (TOPUP_GROUP_PROTOCOL=consumer, KIP-848) that
keeps co-partitioning. Workers scale 1 -> 2 -> 3 -> 2 while traffic flows; every worker
logs what the group protocol handed it and what it processed (the
TOPUP_TEST_ASSIGNMENT_LOG hook). Checked against the protocol's own callbacks: a partition
number is processed only while its worker holds it on every topic it reads, never by two
workers at once, the first worker keeps processing through every rebalance, and every
credit is written exactly once (read_committed)."""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

from tests.chaos.harness import Traffic, chaos_env, health, wait_for
from tests.kafka_harness import WorkerProcess, settings_from

Event = dict


def events(path: Path) -> list[Event]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def completed_by(path: Path, worker: WorkerProcess) -> set[int]:
    """Partition numbers the worker holds whole now, by its log."""
    held: set[tuple[str, int]] = set()
    for event in events(path):
        if event["pid"] != worker.process.pid:
            continue
        tps = {tuple(tp) for tp in event["tps"]}
        if event["event"] == "assigned":
            held |= tps
        elif event["event"] == "revoked":
            held -= tps
    subscribed = all_topics(events(path))
    return {p for _, p in held if {(t, p) for t in subscribed} <= held}


def all_topics(log: list[Event]) -> set[str]:
    """The first worker alone is first assigned every subscribed topic's partitions."""
    return {tp[0] for tp in next(e for e in log if e["event"] == "assigned")["tps"]}


def check_copartitioned(log: list[Event]) -> dict[int, list[tuple[float, float]]]:
    """Replays each worker's callbacks and asserts that every processed topic partition
    had its whole group (every subscribed topic at that number) held by the worker, and
    that no two workers held a whole group at once. Returns each worker's spans of
    holding each number whole, as (start, end) per pid and number."""
    subscribed = all_topics(log)
    held: dict[int, set[tuple[str, int]]] = defaultdict(set)
    whole_since: dict[tuple[int, int], float] = {}
    spans: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    end = max(e["t"] for e in log)
    for event in sorted(log, key=lambda e: e["t"]):
        pid, tps = event["pid"], {tuple(tp) for tp in event["tps"]}
        if event["event"] == "assigned":
            held[pid] |= tps
        elif event["event"] == "revoked":
            held[pid] -= tps
        elif event["event"] == "processed":
            for topic, p in tps:
                missing = {(t, p) for t in subscribed} - held[pid]
                assert not missing, (f"{pid} processed {topic}[{p}] at {event['t']} "
                                     f"without its twins {sorted(missing)}")
        if event["event"] == "processed":
            continue
        for p in {tp[1] for tp in tps}:
            whole = {(t, p) for t in subscribed} <= held[pid]
            if whole and (pid, p) not in whole_since:
                whole_since[(pid, p)] = event["t"]
            elif not whole and (pid, p) in whole_since:
                spans[(pid, p)].append((whole_since.pop((pid, p)), event["t"]))
    for (pid, p), since in whole_since.items():
        spans[(pid, p)].append((since, end))
    by_number: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for (_, p), intervals in spans.items():
        by_number[p].extend(intervals)
    for p, intervals in by_number.items():
        intervals.sort()
        for (_, first_end), (second_start, _) in pairwise(intervals):
            assert first_end <= second_start, f"two workers held partition {p} whole at once"
    return {pid: [span for (owner, _), ss in spans.items() if owner == pid for span in ss]
            for pid in {pid for pid, _ in spans}}


def test_scaling_1_2_3_2_moves_only_what_changes_owner_and_keeps_groups_whole(
    kafka_env, workers, tmp_path
):
    log_path = tmp_path / "assignments.jsonl"
    env = chaos_env(kafka_env, 6, TOPUP_GROUP_PROTOCOL="consumer",
                    TOPUP_TEST_ASSIGNMENT_LOG=str(log_path))
    first = workers.start("a", **env)
    wait_for("the first worker serves", lambda: health(first) == 200, 120)
    assert completed_by(log_path, first) == {0, 1, 2, 3}
    traffic = Traffic(settings_from(env), seed=5, orders=600, slice_size=10,
                      pause_s=0.3).start()

    second = workers.start("b", **env)
    wait_for("the second worker takes its share",
             lambda: len(completed_by(log_path, second)) == 2, 90)
    third = workers.start("c", **env)
    wait_for("three workers share every partition", lambda: all(
        completed_by(log_path, w) for w in (first, second, third)) and sorted(
        [*completed_by(log_path, first), *completed_by(log_path, second),
         *completed_by(log_path, third)]) == [0, 1, 2, 3], 90)
    third.stop()
    wait_for("two workers share every partition again", lambda: sorted(
        [*completed_by(log_path, first), *completed_by(log_path, second)]) == [0, 1, 2, 3], 90)

    traffic.assert_exactly_once([first, second], timeout_s=180)
    log = events(log_path)
    spans = check_copartitioned(log)
    # Incremental: through each join and leave, some partition stayed whole, and kept
    # processing, on a worker that was there before. With the eager protocol every join
    # and leave revokes every partition of every worker, so no span crosses one.
    def first_event(worker: WorkerProcess, kind: str) -> float:
        return min(e["t"] for e in log if e["pid"] == worker.process.pid and e["event"] == kind)

    left = max(e["t"] for e in log if e["pid"] == third.process.pid and e["event"] == "revoked")
    for moment, newcomer in ((first_event(second, "assigned"), second),
                             (first_event(third, "assigned"), third), (left, third)):
        assert any(start < moment < end for pid, pid_spans in spans.items()
                   if pid != newcomer.process.pid for start, end in pid_spans), (
            f"every partition stopped at {moment}: {dict(spans)}")
    # The moved partitions were processed by their new owners.
    processed_by = defaultdict(set)
    for e in log:
        if e["event"] == "processed":
            processed_by[e["pid"]] |= {tp[1] for tp in e["tps"]}
    assert processed_by[second.process.pid] and processed_by[third.process.pid]
