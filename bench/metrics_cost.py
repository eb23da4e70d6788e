"""What the metrics cost on the hot path (issue 18: within 3%).

The topology's own work (bench.domain_only: every stage, the worker's batch handling,
stores and state encoding, no Kafka) over the same input records, with three recorders:

- `none`: the worker's metrics interface recording nothing, the baseline;
- `none_again`: the same once more, an A/A check: its ratio to `none` is what the method
  itself shows where there is no difference;
- `per_call`: prometheus-client called on every `inc`/`observe`, as the worker did before
  its recording was buffered (the "before");
- `buffered`: the worker's `Metrics`, recording in plain counters handed to
  prometheus-client once per batch (the "after").

Each round runs the three one after the other in one process, the order rotated every
round, so a busy machine slows them alike and neither warming nor cooling favours one.
Each run is timed in CPU seconds of this process as well as in wall seconds: on a
machine shared with other work the wall time swings by tens of percent between runs
while the CPU time measures this process's own work (it still swings: caches and cores
are shared). The figures are the median (and range) over rounds of the per-round ratios
to `none`, and the ratio of each arm's fastest run to the fastest `none` run.

Apart from the topology, the metric calls one run made are replayed against each arm:
the same calls in the same order, timed alone, many times. The arm's extra time over
`none`'s, as a share of the topology's CPU time, is the metrics' cost without the
topology's run-to-run noise.

`python -m bench.metrics_cost --orders 1000 --rounds 15` starts the bench broker (as
`python -m bench` does) and prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from bench.domain_only import in_process_topology, read_inputs, seconds_to_pipe
from bench.workload import produce_workload
from streams.config import load_settings
from streams.metrics import Metrics
from streams.runtime.context import Record
from streams.runtime.worker import GC_THRESHOLD


class Unrecorded(Metrics):
    """The worker's metrics interface, recording nothing: the baseline."""

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        pass

    def set(self, name: str, value: float, **labels: str) -> None:
        pass

    def observe(self, name: str, value: float, **labels: str) -> None:
        pass


class PerCall(Metrics):
    """prometheus-client on every call, as before the recording was buffered."""

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._child(Counter, name, labels).inc(amount)  # type: ignore[attr-defined]

    def set(self, name: str, value: float, **labels: str) -> None:
        self._child(Gauge, name, labels).set(value)  # type: ignore[attr-defined]

    def observe(self, name: str, value: float, **labels: str) -> None:
        self._child(Histogram, name, labels).observe(value)  # type: ignore[attr-defined]


class Recording(Unrecorded):
    """Records nothing, but keeps every call the topology makes, to replay them."""

    def __init__(self) -> None:
        super().__init__(process_metrics=False)
        self.calls: list[tuple[str, str, float, dict[str, str]]] = []

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self.calls.append(("inc", name, amount, labels))

    def set(self, name: str, value: float, **labels: str) -> None:
        self.calls.append(("set", name, value, labels))

    def observe(self, name: str, value: float, **labels: str) -> None:
        self.calls.append(("observe", name, value, labels))

    def flush(self) -> None:
        self.calls.append(("flush", "", 0.0, {}))


def replay_seconds(metrics: Metrics, calls: list[tuple[str, str, float, dict[str, str]]],
                   ) -> float:
    """CPU seconds `metrics` takes over the topology's own calls, in their order."""
    bound = {op: getattr(metrics, op) for op in ("inc", "set", "observe")}
    flush = metrics.flush
    started = time.process_time()
    for op, name, value, labels in calls:
        if op == "flush":
            flush()
        else:
            bound[op](name, value, **labels)
    flush()
    return time.process_time() - started


def replayed(calls: list[tuple[str, str, float, dict[str, str]]], topology_cpu_s: float,
             rounds: int) -> dict[str, object]:
    """The metrics' own cost, free of the topology's noise: the calls one run made,
    replayed against each arm (rotated per round), the arm's extra time over `none`'s
    as a share of the topology's CPU time without metrics."""
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    names = list(ARMS)
    for n in range(rounds):
        for arm in names[n % len(names):] + names[:n % len(names)]:
            seconds[arm].append(replay_seconds(ARMS[arm](), calls))
    none = statistics.median(seconds["none"])
    return {
        "calls": len(calls), "topology_cpu_s": topology_cpu_s,
        "share_of_topology": {arm: (statistics.median(seconds[arm]) - none) / topology_cpu_s
                              for arm in COMPARED},
        "us_per_call": {arm: 1e6 * statistics.median(seconds[arm]) / len(calls)
                        for arm in ARMS},
    }


ARMS: dict[str, Callable[[], Metrics]] = {
    "none": Unrecorded, "none_again": Unrecorded, "per_call": PerCall, "buffered": Metrics,
}
COMPARED = ("none_again", "per_call", "buffered")


def seconds_with(metrics: Metrics, bootstrap: str, inputs: list[Record], orders: int,
                 ) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run over `inputs`."""
    gc.collect()
    topology = in_process_topology(
        bootstrap, Path(tempfile.mkdtemp(prefix="bench-metrics-")), metrics)
    wall_started = time.monotonic()
    cpu = seconds_to_pipe(topology, inputs, orders, clock=time.process_time)
    return cpu, time.monotonic() - wall_started


def _ratios(runs: dict[str, list[float]], arm: str) -> dict[str, float]:
    ratios = [mine / base for mine, base in zip(runs[arm], runs["none"], strict=True)]
    # fastest/fastest: interference from other work only ever adds time, so each arm's
    # fastest run is the one least disturbed.
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "fastest": min(runs[arm]) / min(runs["none"])}


def measure(bootstrap: str, orders: int, rounds: int) -> dict[str, object]:
    from bench.harness import recreate_topics

    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    recreate_topics(settings)
    produce_workload(settings, orders)
    inputs = read_inputs(bootstrap, 2 * orders)
    gc.set_threshold(*GC_THRESHOLD)
    # A first run of each, not counted: caches that live for the process (schemas,
    # rules, prometheus-client's imports) fill.
    for make in ARMS.values():
        seconds_with(make(), bootstrap, inputs, orders)
    cpu: dict[str, list[float]] = {arm: [] for arm in ARMS}
    wall: dict[str, list[float]] = {arm: [] for arm in ARMS}
    names = list(ARMS)
    for n in range(rounds):
        for arm in names[n % len(names):] + names[:n % len(names)]:
            cpu_s, wall_s = seconds_with(ARMS[arm](), bootstrap, inputs, orders)
            cpu[arm].append(cpu_s)
            wall[arm].append(wall_s)
    recording = Recording()
    seconds_with(recording, bootstrap, inputs, orders)
    return {
        "orders": orders, "rounds": rounds,
        "replayed": replayed(recording.calls, statistics.median(cpu["none"]), 4 * rounds),
        "events_per_cpu_s": {arm: 2 * orders / statistics.median(cpu[arm]) for arm in ARMS},
        "cpu_ratio": {arm: _ratios(cpu, arm) for arm in COMPARED},
        "wall_ratio": {arm: _ratios(wall, arm) for arm in COMPARED},
    }


def main() -> None:
    from bench.__main__ import _broker

    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--kafka-port", type=int, default=19192)
    args = parser.parse_args()
    print(json.dumps(measure(_broker(args.kafka_port), args.orders, args.rounds)))


if __name__ == "__main__":
    main()
