"""What the metrics cost on the hot path (issue 18: within 3%).

The topology's own work (bench.domain_only: every stage, the worker's batch handling,
stores and state encoding, no Kafka) over the same input records, once with the worker's
prometheus-client metrics and once with a recorder that records nothing. The two runs
alternate in one process, so a busy machine slows both alike; the figure is the median of
the per-pair ratios.

`python -m bench.metrics_cost --orders 20000 --pairs 5` starts the bench broker (as
`python -m bench` does) and prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
from pathlib import Path

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


def seconds_with(metrics: Metrics, bootstrap: str, inputs: list[Record], orders: int) -> float:
    gc.collect()
    return seconds_to_pipe(in_process_topology(
        bootstrap, Path(tempfile.mkdtemp(prefix="bench-metrics-")), metrics), inputs, orders)


def measure(bootstrap: str, orders: int, pairs: int) -> dict[str, float]:
    from bench.harness import recreate_topics

    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    recreate_topics(settings)
    produce_workload(settings, orders)
    inputs = read_inputs(bootstrap, 2 * orders)
    gc.set_threshold(*GC_THRESHOLD)
    # A first run, not counted: caches that live for the process (schemas, rules) fill.
    seconds_with(Unrecorded(), bootstrap, inputs, orders)
    ratios, recorded, unrecorded = [], [], []
    for pair in range(pairs):
        # Alternate which goes first, so a warming (or cooling) machine favours neither.
        first_recorded = pair % 2 == 0
        a = seconds_with(Metrics() if first_recorded else Unrecorded(), bootstrap, inputs, orders)
        b = seconds_with(Unrecorded() if first_recorded else Metrics(), bootstrap, inputs, orders)
        with_metrics, without = (a, b) if first_recorded else (b, a)
        recorded.append(with_metrics)
        unrecorded.append(without)
        ratios.append(with_metrics / without)
    return {
        "orders": orders, "pairs": pairs,
        "events_per_s_with_metrics": 2 * orders / statistics.median(recorded),
        "events_per_s_without": 2 * orders / statistics.median(unrecorded),
        "seconds_ratio_median": statistics.median(ratios),
        "seconds_ratio_min": min(ratios), "seconds_ratio_max": max(ratios),
    }


def main() -> None:
    from bench.__main__ import _broker

    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--kafka-port", type=int, default=19192)
    args = parser.parse_args()
    print(json.dumps(measure(_broker(args.kafka_port), args.orders, args.pairs)))


if __name__ == "__main__":
    main()
