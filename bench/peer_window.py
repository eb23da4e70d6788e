"""python -m bench.peer_window: issue 19's windowed peer benchmark, ours against Quix Streams.

Three tumbling windows (1 min, 10 min, 1 h) over five dimensions (user, device, ip, card,
merchant), counted per attempt as Quix's `.count().current()` does; bench/window_step.py
defines the semantics. As bench/peer.py: one workload produced once, our worker and then the
Quix app read it, one process each, exactly-once, each timed from the first record handed
to it until the last of its outputs is readable with read_committed; both output sets must
equal the plain-Python reference below, as multisets of (dimension, value, size, window
start, count), or the run raises instead of reporting a rate.
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
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from bench import peer_window_quix, shared_step, window_step
from bench.peer import _delete_run_topics
from bench.peer_quix import QUIXSTREAMS_VERSION, quix_python
from bench.window_step import Tuple15

REPO = Path(__file__).resolve().parents[1]
Raw = list[tuple[bytes, bytes]]


def expected_tuples(records: int, seed: int) -> Counter[Tuple15]:
    """The step in plain Python: every attempt bumps its window per dimension and size."""
    counts: Counter[tuple[str, str, int, int]] = Counter()
    expected: Counter[Tuple15] = Counter()
    for attempt in window_step.attempts(records, seed):
        at = attempt["occurred_at"]
        for dimension, attribute, _ in window_step.DIMENSIONS:
            for size in window_step.WINDOWS_MS:
                window = (dimension, attempt[attribute], size, window_step.window_start(at, size))
                counts[window] += 1
                expected[(*window, counts[window])] += 1
    return expected


def _quix_tuple(key: bytes, value: bytes) -> Tuple15:
    body = json.loads(value)
    return (body["dim"], key.decode(), body["end"] - body["start"], body["start"],
            body["value"])


def _await_outputs(bootstrap: str, topic: str, expected: int, process: subprocess.Popen[bytes],
                   log: Path, timeout_s: float) -> tuple[float, Raw]:
    """Reads `topic` (read_committed) until `expected` records are there; returns when that
    happened and the records, a second's stragglers included so a duplicate cannot hide."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-window-reader-{uuid.uuid4().hex}",
        "isolation.level": "read_committed", "enable.auto.commit": False,
    })
    raw: Raw = []
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(shared_step.PARTITIONS)])
        deadline = time.monotonic() + timeout_s
        while len(raw) < expected:
            if process.poll() is not None:
                raise RuntimeError(f"{topic}: the step's process exited; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: {len(raw)} of {expected} outputs in {timeout_s}s")
            # Kept raw while timing: decoding here would compete with the step for CPU.
            raw += [(m.key(), m.value()) for m in consumer.consume(10_000, 0.1) if not m.error()]
        finished = time.monotonic()
        idle_until = finished + 1.0
        while time.monotonic() < idle_until:
            raw += [(m.key(), m.value()) for m in consumer.consume(10_000, 0.1) if not m.error()]
    finally:
        consumer.close()
    return finished, raw


def _timed(name: str, process: subprocess.Popen[bytes], bootstrap: str, topic: str,
           expected: int, work: Path, timeout_s: float) -> tuple[float, Raw]:
    log, started_file = work / f"{name}.log", work / f"{name}.started"
    try:
        finished, raw = _await_outputs(bootstrap, topic, expected, process, log, timeout_s)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return finished - float(started_file.read_text()), raw


def _check(name: str, outputs: Counter[Tuple15], expected: Counter[Tuple15]) -> None:
    if outputs != expected:
        wrong = sorted((outputs - expected) + (expected - outputs))[:5]
        raise AssertionError(f"{name}: {outputs.total()} output tuples, {expected.total()} "
                             f"expected; first differences: {wrong}")


def run_window_step(bootstrap: str, records: int, seed: int = 1) -> dict[str, float]:
    """Both sides over one pre-produced workload; rates are input records per second."""
    attributes = tuple((name, attribute) for name, attribute, _ in window_step.DIMENSIONS)
    our_semantics = (attributes, window_step.WINDOWS_MS, window_step.GRACE_MS)
    their_semantics = (peer_window_quix.DIMENSIONS, peer_window_quix.WINDOWS_MS,
                       peer_window_quix.GRACE_MS)
    if our_semantics != their_semantics:
        raise AssertionError("bench/peer_window_quix.py's semantics drifted from ours")
    python = quix_python()  # first, so a failed install fails before anything is timed
    run = uuid.uuid4().hex[:8]
    source, by_dimension = f"bench.window.{run}.in", f"bench.window.{run}.by-dimension"
    ours_out, quix_out = f"bench.window.{run}.out-ours", f"bench.window.{run}.out-quix"
    shared_step.create_step_topics(bootstrap, source, by_dimension, ours_out, quix_out)
    work = Path(tempfile.mkdtemp(prefix=f"bench-window-{run}-"))
    timeout_s = 120 + records / 50
    dimensions, windows = len(window_step.DIMENSIONS), len(window_step.WINDOWS_MS)
    try:
        window_step.produce_attempts(bootstrap, source, records, seed)
        expected = expected_tuples(records, seed)

        ours_cmd = [sys.executable, "-m", "bench.window_step", "--bootstrap", bootstrap,
                    "--input", source, "--by-dimension", by_dimension, "--output", ours_out,
                    "--app-id", f"bench-window-{run}-ours",
                    "--state-dir", str(work / "ours-state"),
                    "--started-file", str(work / "ours.started")]
        with (work / "ours.log").open("wb") as log:
            ours = subprocess.Popen(ours_cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        ours_s, ours_raw = _timed("ours", ours, bootstrap, ours_out, records * dimensions, work,
                                  timeout_s)
        _check("ours", Counter(t for k, v in ours_raw for t in window_step.our_tuples(k, v)),
               expected)

        (work / "quix-state").mkdir()
        quix_cmd = [str(python), str(Path(peer_window_quix.__file__).resolve()),
                    "--bootstrap", bootstrap, "--input", source, "--output", quix_out,
                    "--group", f"bench-window-{run}-quix", "--state-dir",
                    str(work / "quix-state"), "--started-file", str(work / "quix.started")]
        with (work / "quix.log").open("wb") as log:
            quix = subprocess.Popen(quix_cmd, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=work / "quix-state")
        quix_s, quix_raw = _timed("quix", quix, bootstrap, quix_out,
                                  records * dimensions * windows, work, timeout_s)
        _check("quix", Counter(_quix_tuple(k, v) for k, v in quix_raw), expected)
    finally:
        _delete_run_topics(bootstrap, run)
    # Kept when the run failed: the logs of both processes are there.
    shutil.rmtree(work, ignore_errors=True)
    ours_rate, quix_rate = records / ours_s, records / quix_s
    return {
        "window_ours_records_per_s": ours_rate,
        "window_quix_records_per_s": quix_rate,
        "window_ours_over_quix": ours_rate / quix_rate,
        "window_ours_seconds": ours_s,
        "window_quix_seconds": quix_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_window", description=__doc__)
    parser.add_argument("--bootstrap", required=True, help="e.g. the output of deploy/kafka/start")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = run_window_step(args.bootstrap, args.records, args.seed)
    print(json.dumps({"records": args.records, "quixstreams": QUIXSTREAMS_VERSION, **results},
                     indent=2))


if __name__ == "__main__":
    main()
