"""python -m bench.peer: issue 7's peer benchmark, our step against Quix Streams' step.

One workload is produced once; our worker (bench/shared_step.py) and then the Quix
Streams app (bench/peer_quix.py) read the same input topic, each with its own consumer
group and output topic, one process each, exactly-once. Each is timed from the first
record handed to its step until the last of its outputs is readable with read_committed
here. Correctness comes first: both output sets must equal the step computed in plain
Python over the same records, or the run raises instead of reporting a rate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from bench import shared_step
from bench.peer_quix import QUIXSTREAMS_VERSION, quix_python, start_quix
from streams.admin import admin_client

REPO = Path(__file__).resolve().parents[1]
Outputs = list[tuple[str, int]]  # (event_id, attempts_1h), in arrival order


def expected_outputs(records: int, seed: int) -> set[tuple[str, int]]:
    """The step in plain Python: per user, records keep their produce order in Kafka."""
    seen: set[str] = set()
    times: dict[str, list[int]] = {}
    expected = set()
    for attempt in shared_step.attempts(records, seed):
        if attempt["event_id"] in seen:
            continue
        seen.add(attempt["event_id"])
        user = attempt["user_id"]
        times[user] = shared_step.trailing_hour(times.get(user, []), attempt["occurred_at"])
        expected.add((attempt["event_id"], len(times[user])))
    return expected


def _await_outputs(
    bootstrap: str, topic: str, expected: int, process: subprocess.Popen[bytes],
    log: Path, timeout_s: float,
) -> tuple[float, Outputs]:
    """Reads the output topic (read_committed) until `expected` records are there; returns
    when that happened (time.monotonic) and what was read, a second's stragglers included
    so a duplicate cannot hide behind the count."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-step-reader-{uuid.uuid4().hex}",
        "isolation.level": "read_committed", "enable.auto.commit": False,
    })
    raw: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(shared_step.PARTITIONS)])
        deadline = time.monotonic() + timeout_s
        while len(raw) < expected:
            if process.poll() is not None:
                raise RuntimeError(f"{topic}: the step's process exited; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: {len(raw)} of {expected} outputs in {timeout_s}s")
            # Kept raw while timing: decoding here would compete with the step for CPU.
            raw += [m.value() for m in consumer.consume(10_000, 0.1) if not m.error()]
        finished = time.monotonic()
        idle_until = finished + 1.0
        while time.monotonic() < idle_until:
            raw += [m.value() for m in consumer.consume(10_000, 0.1) if not m.error()]
    finally:
        consumer.close()
    outputs = [(value["event_id"], value["attempts_1h"]) for value in map(json.loads, raw)]
    return finished, outputs


def _timed(
    name: str, process: subprocess.Popen[bytes], bootstrap: str, topic: str, expected: int,
    work: Path, timeout_s: float,
) -> tuple[float, Outputs]:
    """Seconds from the step's first record to its last output committed, and the outputs."""
    log, started_file = work / f"{name}.log", work / f"{name}.started"
    try:
        finished, outputs = _await_outputs(bootstrap, topic, expected, process, log, timeout_s)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return finished - float(started_file.read_text()), outputs


def _check(name: str, outputs: Outputs, expected: set[tuple[str, int]]) -> None:
    if len(outputs) != len(expected) or set(outputs) != expected:
        wrong = sorted(set(outputs) ^ expected)[:5]
        raise AssertionError(
            f"{name}: {len(outputs)} outputs, {len(set(outputs))} distinct, "
            f"{len(expected)} expected; first differences: {wrong}"
        )


def _delete_run_topics(bootstrap: str, run: str) -> None:
    # Inputs, outputs and both sides' changelogs all carry the run id in their names.
    admin = admin_client(shared_step.settings_for(bootstrap))
    doomed = [name for name in admin.list_topics(timeout=10).topics if run in name]
    if doomed:
        for future in admin.delete_topics(doomed, request_timeout=30).values():
            future.result()


def run_shared_step(bootstrap: str, records: int, seed: int = 1) -> dict[str, float]:
    """Both steps over one pre-produced workload; rates are input records per second."""
    python = quix_python()  # first, so a failed install fails before anything is timed
    run = uuid.uuid4().hex[:8]
    source = f"bench.step.{run}.in"
    ours_out, quix_out = f"bench.step.{run}.out-ours", f"bench.step.{run}.out-quix"
    shared_step.create_step_topics(bootstrap, source, ours_out, quix_out)
    work = Path(tempfile.mkdtemp(prefix=f"bench-step-{run}-"))
    timeout_s = 120 + records / 100
    try:
        unique = shared_step.produce_attempts(bootstrap, source, records, seed)
        expected = expected_outputs(records, seed)
        if len(expected) != unique:
            raise AssertionError(f"reference has {len(expected)} outputs for {unique} events")

        ours_cmd = [sys.executable, "-m", "bench.shared_step", "--bootstrap", bootstrap,
                    "--input", source, "--output", ours_out, "--app-id", f"bench-step-{run}-ours",
                    "--state-dir", str(work / "ours-state"),
                    "--started-file", str(work / "ours.started")]
        with (work / "ours.log").open("wb") as log:
            ours = subprocess.Popen(ours_cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        ours_s, ours_outputs = _timed("ours", ours, bootstrap, ours_out, unique, work, timeout_s)
        _check("ours", ours_outputs, expected)

        (work / "quix-state").mkdir()
        quix = start_quix(python, bootstrap, source, quix_out, f"bench-step-{run}-quix",
                          work / "quix-state", work / "quix.started", work / "quix.log")
        quix_s, quix_outputs = _timed("quix", quix, bootstrap, quix_out, unique, work, timeout_s)
        _check("quix", quix_outputs, expected)
    finally:
        _delete_run_topics(bootstrap, run)
    # Kept when the run failed: the logs of both processes are there.
    shutil.rmtree(work, ignore_errors=True)
    ours_rate, quix_rate = records / ours_s, records / quix_s
    return {
        "ours_records_per_s": ours_rate,
        "quix_records_per_s": quix_rate,
        "ours_over_quix": ours_rate / quix_rate,
        "ours_seconds": ours_s,
        "quix_seconds": quix_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--bootstrap", required=True, help="e.g. the output of deploy/kafka/start")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = run_shared_step(args.bootstrap, args.records, args.seed)
    print(json.dumps({"records": args.records, "quixstreams": QUIXSTREAMS_VERSION, **results},
                     indent=2))


if __name__ == "__main__":
    main()
