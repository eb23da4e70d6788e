"""python -m bench: throughput of the full topology against the Python ceiling, same run.

Each repetition starts from fresh topics, pre-produces the workload (not measured), runs
the ceiling loop and then our worker over the same records, and keeps both times; the
report gives events per second with min/median/max and the ratio ours / ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

from bench.ceiling import run_ceiling
from bench.profile import profile_topology
from bench.topology import run_topology
from bench.workload import produce_workload
from streams.admin import recreate_topics
from streams.config import load_settings

REPO = Path(__file__).resolve().parents[1]


def _broker(port: int) -> str:
    env = dict(os.environ, TOPUP_KAFKA_PORT=str(port))
    result = subprocess.run([str(REPO / "deploy/kafka/start")], env=env, check=True,
                            capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1]


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run(orders: int, reps: int, out_dir: Path, bootstrap: str, profile: bool = False) -> dict:
    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    ceiling_eps, ours_eps = [], []
    for _ in range(reps):
        recreate_topics(settings)
        events = produce_workload(settings, orders)
        ceiling_eps.append(events / run_ceiling(settings, events))
        ours_eps.append(events / run_topology(bootstrap, orders))
    ratios = [o / c for o, c in zip(ours_eps, ceiling_eps, strict=True)]
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "versions": {name: version(name) for name in
                     ("confluent-kafka", "rocksdict", "aiokafka", "fastavro")},
        "workload": {"orders": orders, "input_events": 2 * orders, "repetitions": reps},
        "ceiling_events_per_s": _spread(ceiling_eps),
        "topology_events_per_s": _spread(ours_eps),
        "topology_over_ceiling": _spread(ratios),
    }
    if profile:
        recreate_topics(settings)
        produce_workload(settings, orders)
        results["profile"] = profile_topology(bootstrap, orders)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "RESULTS.md").write_text(_markdown(results))
    return results


def _markdown(results: dict) -> str:
    def row(name: str, key: str, fmt: str) -> str:
        spread = results[key]
        return f"| {name} | " + " | ".join(format(spread[k], fmt) for k in
                                            ("min", "median", "max")) + " |"

    work = results["workload"]
    return "\n".join([
        "# Benchmark results", "",
        f"{results['date']}; {results['machine']['cpus']} CPUs; Python "
        f"{results['machine']['python']}; "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ".", "",
        f"Workload: {work['orders']} orders and as many signed HMAC callbacks "
        f"({work['input_events']} input events), pre-produced; {work['repetitions']} "
        "repetitions, each from fresh topics, one worker, 4 partitions, exactly-once.", "",
        "| measure | min | median | max |", "|---|---|---|---|",
        row("ceiling: confluent-kafka transactional decode+encode (events/s)",
            "ceiling_events_per_s", ".0f"),
        row("TopUp Guard full topology to every order credited (events/s)",
            "topology_events_per_s", ".0f"),
        row("ours / ceiling", "topology_over_ceiling", ".3f"), "",
        *_profile_section(results.get("profile")),
    ])


def _profile_section(profile: dict | None) -> list[str]:
    if not profile:
        return []
    lines = ["## Where the time goes", "",
             "py-spy samples (200/s) of one more run of the same workload, as shares of all "
             "samples. Self time by function:", "", "| share | function |", "|---|---|"]
    lines += [f"| {share:.1%} | `{frame}` |" for frame, share in profile["self"]]
    lines += ["", "Inclusive time of our own functions:", "", "| share | function |",
              "|---|---|"]
    lines += [f"| {share:.1%} | `{frame}` |" for frame, share in profile["inclusive_ours"]]
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench")
    parser.add_argument("--kafka-port", type=int, default=19192)
    parser.add_argument("--profile", action="store_true",
                        help="one more run under py-spy; where the time goes goes in RESULTS.md")
    args = parser.parse_args()
    results = run(args.orders, args.reps, args.out, _broker(args.kafka_port), args.profile)
    print(_markdown(results))


if __name__ == "__main__":
    main()
