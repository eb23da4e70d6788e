"""python -m bench: how fast TopUp Guard is, side by side with its ceilings and a peer.

Every figure is measured `--reps` times and reported as min/median/max; ratios are taken
within one repetition (the same minute), since these machines are noisy. Sections:

- throughput: the full topology, the Python ceiling (a plain transactional confluent-kafka
  loop), the framework floor (our runtime only decoding and forwarding) and the domain
  alone (every stage in process, no Kafka), over the same pre-produced records from fresh
  topics;
- kafka: the broker's own ceiling, Kafka's producer and consumer perf tools;
- peer: dedup + per-user velocity, and counts in three tumbling windows over five
  dimensions, ours against Quix Streams over the same records;
- latency: callback write to credit readable, at fixed callback rates;
- recovery: a worker holding a million orders' state, killed and restarted empty;
- restart: restarts on intact local state at two sizes, and a failover with and without
  standby replicas;
- state: the bytes each store keeps per order, before and after every retention;
- scaleout: 1 -> 2 -> 3 -> 2 workers under traffic, eager and incremental rebalancing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

from bench.ceiling import run_ceiling
from bench.floor import run_floor
from bench.harness import recreate_topics
from bench.kafka_perf import run_kafka_perf
from bench.latency import run_latency
from bench.peer import run_shared_step
from bench.peer_window import run_window_step
from bench.profile import profile_topology
from bench.recovery import run_recovery
from bench.restart import run_restarts
from bench.scale_out import run_scale_out
from bench.state_size import run_state_size
from bench.topology import run_topology
from bench.workload import produce_workload
from streams.config import load_settings

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("throughput", "kafka", "peer", "latency", "recovery", "restart", "state",
            "scaleout")


@dataclass(frozen=True)
class Sizes:
    orders: int = 200_000
    perf_records: int = 1_000_000
    peer_records: int = 200_000
    # "RATE" on one worker, "RATExN" on N workers in one group.
    latency_rates: tuple[str, ...] = ("300", "500", "1000x2")
    latency_seconds: float = 20.0
    # Callbacks/s for the one-vs-two-workers throughput runs; 0 skips them.
    latency_saturate: int = 2000
    recovery_orders: int = 1_000_000
    recovery_dedup_ids: int = 5_000_000
    state_orders: int = 20_000
    restart_orders: tuple[int, ...] = (200_000, 1_000_000)
    failover_orders: int = 1_000_000
    scaleout_rate: int = 100
    window_records: int = 50_000


def _broker(port: int) -> str:
    env = dict(os.environ, TOPUP_KAFKA_PORT=str(port))
    result = subprocess.run([str(REPO / "deploy/kafka/start")], env=env, check=True,
                            capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1]


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _throughput(bootstrap: str, sizes: Sizes) -> dict[str, float]:
    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    recreate_topics(settings)
    events = produce_workload(settings, sizes.orders)
    ceiling = events / run_ceiling(settings, events)
    floor = events / run_floor(settings, events)
    domain = events / _domain_only_seconds(bootstrap, sizes.orders)
    topology = run_topology(bootstrap, sizes.orders)
    ours = events / topology.seconds
    # The floor handles one record per input event; the topology handles every internal
    # record too (risk fan-out and answers, payments, reconciliation inputs, ...).
    handled_per_s = topology.records_handled / topology.seconds
    records_per_event = topology.records_handled / events
    # The topology's bound: its rate if the domain work cost nothing, every record it
    # handles costing what one costs the floor.
    bound = floor / records_per_event
    return {"ceiling_events_per_s": ceiling, "floor_events_per_s": floor,
            "topology_events_per_s": ours, "topology_over_ceiling": ours / ceiling,
            "topology_over_floor": ours / floor, "floor_over_ceiling": floor / ceiling,
            "domain_events_per_s": domain, "domain_over_ceiling": domain / ceiling,
            "topology_over_domain": ours / domain,
            "topology_over_bound": ours / bound,
            "records_per_input_event": records_per_event,
            "topology_records_handled_per_input_event": records_per_event,
            "topology_records_handled_per_s": handled_per_s,
            "topology_records_handled_over_floor": handled_per_s / floor}


def _domain_only_seconds(bootstrap: str, orders: int) -> float:
    # A process of its own, as the worker has: a fresh heap and its GC settings.
    result = subprocess.run([sys.executable, "-m", "bench.domain_only", bootstrap, str(orders)],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def _rate_and_workers(spec: str) -> tuple[int, int]:
    rate, _, workers = spec.partition("x")
    return int(rate), int(workers or 1)


def _latency(bootstrap: str, sizes: Sizes) -> dict[str, float]:
    figures: dict[str, float] = {}
    for spec in sizes.latency_rates:
        rate, workers = _rate_and_workers(spec)
        result = run_latency(bootstrap, rate, sizes.latency_seconds, workers)
        figures |= {f"{rate}/s {name}": value for name, value in result.items()
                    if name != "rate_per_s"}
    if sizes.latency_saturate:
        # One worker, then two, at a rate neither keeps up with, in the same run: what
        # each credits per second is its throughput on the credit path.
        one, two = (run_latency(bootstrap, sizes.latency_saturate, sizes.latency_seconds,
                                workers) for workers in (1, 2))
        figures |= {"one_worker_credits_per_s": one["credits_per_s"],
                    "two_workers_credits_per_s": two["credits_per_s"],
                    "two_workers_over_one": two["credits_per_s"] / one["credits_per_s"]}
        # Whether the second worker had a core to use: the machine's cores by process.
        figures |= {f"{prefix}_{name}": value
                    for prefix, run in (("one_worker", one), ("two_workers", two))
                    for name, value in run.items() if name.startswith("cpu_")}
    return figures


RUNNERS: dict[str, Callable[[str, Sizes], dict[str, float]]] = {
    "throughput": _throughput,
    "kafka": lambda bootstrap, sizes: run_kafka_perf(bootstrap, sizes.perf_records),
    "peer": lambda bootstrap, sizes: (run_shared_step(bootstrap, sizes.peer_records)
                                      | run_window_step(bootstrap, sizes.window_records)),
    "latency": _latency,
    "recovery": lambda bootstrap, sizes: run_recovery(
        bootstrap, sizes.recovery_orders, sizes.recovery_dedup_ids),
    "state": lambda _, sizes: run_state_size(sizes.state_orders),
    "restart": lambda bootstrap, sizes: run_restarts(
        bootstrap, sizes.restart_orders, sizes.failover_orders),
    "scaleout": lambda bootstrap, sizes: run_scale_out(bootstrap, sizes.scaleout_rate),
}


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def run(sizes: Sizes, reps: int, out_dir: Path, bootstrap: str,
        sections: tuple[str, ...] = SECTIONS, profile: bool = False) -> dict:
    """Measures `sections` and writes the reports; a section not measured now keeps its
    figures from the last report in `out_dir`, marked with when and at which commit."""
    measured: dict[str, dict[str, list[float]]] = {}
    for _ in range(reps):
        for section in sections:
            for name, value in RUNNERS[section](bootstrap, sizes).items():
                measured.setdefault(section, {}).setdefault(name, []).append(value)
    stamp = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": _commit()}
    previous_file = out_dir / "results.json"
    previous = json.loads(previous_file.read_text()) if previous_file.exists() else {}
    kept = {name: section for name, section in previous.get("sections", {}).items()
            if name not in measured}
    results = {
        **stamp,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "versions": {name: version(name) for name in
                     ("confluent-kafka", "rocksdict", "aiokafka", "fastavro", "orjson")},
        "sections": {**kept, **{
            section: {**stamp, "repetitions": reps,
                      "sizes": {**asdict(sizes), "latency_rates": list(sizes.latency_rates),
                                "restart_orders": list(sizes.restart_orders)},
                      "figures": {name: _spread(values) for name, values in figures.items()}}
            for section, figures in measured.items()}},
    }
    if profile:
        settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
        recreate_topics(settings)
        produce_workload(settings, sizes.orders)
        results["profile"] = {**stamp, **profile_topology(bootstrap, sizes.orders)}
    elif "profile" in previous:
        results["profile"] = previous["profile"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "RESULTS.md").write_text(markdown(results))
    return results


TITLES = {
    "throughput": "Throughput: {orders} orders and as many signed HMAC callbacks, pre-produced "
                  "(events/s are input records per second); one worker, 4 partitions, "
                  "exactly-once. Ceiling: a plain confluent-kafka transactional loop that "
                  "decodes and re-encodes the same Avro records. Floor: our runtime with one "
                  "stage that only decodes and forwards them. Domain: every stage of the "
                  "topology in one process, fed batches by hand: no Kafka, no transactions, "
                  "what the domain and state cost on their own. Records handled: every record "
                  "the topology's worker consumed, its internal topics included (the floor "
                  "handles one per input event). Bound: the floor's records/s over the "
                  "records handled per input event, the topology's rate if its domain work "
                  "cost nothing; topology_over_bound is the topology's share of it.",
    "kafka": "The broker's ceiling: Kafka's ProducerPerformance and ConsumerPerformance from "
             "the jars deploy/kafka runs, {perf_records} records of 600 bytes, acks=all.",
    "peer": "Peer: dedup + per-user trailing-hour velocity over {peer_records} JSON attempts "
            "(~10% re-sent), exactly-once, ours (our runtime) against Quix Streams; both "
            "outputs are checked equal to a plain-Python reference before any rate counts. "
            "The window_ rows: counts per user, device, ip, card and merchant in 1 min, "
            "10 min and 1 h tumbling windows (as Quix's `.count().current()`, one result per "
            "attempt, dimension and window) over {window_records} attempts, Quix done its "
            "idiomatic way (group_by per dimension, tumbling_window per size), ours two "
            "stages of one worker (re-key per dimension, then count); checked the same way.",
    "latency": "Latency: callbacks written to topup.webhooks at a fixed rate for "
               "{latency_seconds} s (their orders pre-produced and decided), from the "
               "broker's acknowledgement of the write to the credit readable (read_committed) "
               "on topup.credits. `sustained` is 1 when the end of the run was no slower than "
               "its start. The start_ rows are the callbacks written in the run's first 2 s, "
               "the steady_ rows the rest: a worker idle until then starts with tiny "
               "batches, and the broker takes the first transactional writes to a new "
               "partition slowly. Rates are on one worker unless `workers` says more. "
               "Where the time goes, from the workers' metrics over the run: transactions "
               "(`batches`), records each, a batch's cycle and its handling and commit "
               "time; a credit waits about one cycle per hop. `two_workers_over_one`: "
               "credits/s of two workers over one, each at {latency_saturate} callbacks/s "
               "(above both). The "
               "cpu_ rows (bench/cpu.py, from /proc over the callback window): cores kept busy on "
               "average by the whole machine, the workers (and their main threads, the only "
               "ones that run Python), the local broker, the bench's own writer and reader, "
               "and anything else.",
    "recovery": "Recovery: changelogs holding {recovery_orders} credited orders and "
                "{recovery_dedup_ids} dedup ids; a worker restores them, is killed, its state "
                "dir deleted, and a new worker started: seconds until it is ready and until it "
                "credits a probe order, and its memory while holding that state.",
    "state": "State: {state_orders} paid, settled orders piped through every stage in "
             "process, then event time moved past every retention "
             "(bench/state_size.py): keys and bytes (keys + values as written, before "
             "RocksDB's compression) each store keeps per order, before and after; the "
             "process's RSS growth while it holds them.",
    "restart": "Restart and failover on intact local state (bench/restart.py): changelogs "
               "seeded with N credited orders and N dedup ids for N in {restart_orders}; "
               "seconds from the worker's launch (SIGTERM, then SIGKILL, each after a full "
               "restore) until a probe on every partition is credited, and the changelog "
               "records its restore applied. Failover at {failover_orders}: two workers, the "
               "second SIGKILLed, seconds from the kill until the survivor credits a probe "
               "on every partition, with standby replicas and without (the survivor's old "
               "copy removed after the cleanup delay), or stopped with SIGTERM; the session "
               "timeout (6 s; 3 s in the `3s_session` rows) is in it, `detect_s` is when "
               "the group was seen down to one member.",
    "scaleout": "Scale-out: orders and callbacks at {scaleout_rate} orders/s; workers go "
                "1 -> 2 -> 3 -> 2 (started, then one stopped with SIGTERM) under the eager "
                "`range` protocol (classic) and under KIP-848 (consumer), topics recreated "
                "between them. Per rebalance, the longest gap between batches handling a "
                "partition that stayed on its worker (`stayed, took`: on a worker also "
                "handed partitions, which it restores on its processing thread), and one "
                "that moved; `settled s`: until every partition is handled again. Baseline: "
                "the longest gap over 8 s of steady traffic.",
}


def markdown(results: dict) -> str:
    lines = [
        "# Benchmark results", "",
        f"{results['machine']['cpus']} CPUs; Python {results['machine']['python']}; "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + ".", "",
    ]
    for name in SECTIONS:
        section = results["sections"].get(name)
        if section is None:
            continue
        lines += [f"## {name}", "",
                  f"Measured {section['date']} at {section['commit']}, "
                  f"{section['repetitions']} repetitions. "
                  + TITLES[name].format(**section["sizes"]), "",
                  "| measure | min | median | max |", "|---|---|---|---|"]
        for figure, spread in section["figures"].items():
            cells = " | ".join(f"{spread[k]:.3f}" if abs(spread[k]) < 10 else f"{spread[k]:.0f}"
                               for k in ("min", "median", "max"))
            lines.append(f"| {figure} | {cells} |")
        lines.append("")
    return "\n".join(lines + _profile_section(results.get("profile")))


def _profile_section(profile: dict | None) -> list[str]:
    if not profile:
        return []
    lines = ["## Where the time goes", "",
             f"Measured {profile['date']} at {profile['commit']}: py-spy samples (200/s) of "
             "one more run of the throughput workload, as shares of all samples. Self time "
             "by function:", "", "| share | function |", "|---|---|"]
    lines += [f"| {share:.1%} | `{frame}` |" for frame, share in profile["self"]]
    lines += ["", "Inclusive time of our own functions:", "", "| share | function |",
              "|---|---|"]
    lines += [f"| {share:.1%} | `{frame}` |" for frame, share in profile["inclusive_ours"]]
    return [*lines, ""]


def main() -> None:
    defaults = Sizes()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--orders", type=int, default=defaults.orders)
    parser.add_argument("--perf-records", type=int, default=defaults.perf_records)
    parser.add_argument("--peer-records", type=int, default=defaults.peer_records)
    parser.add_argument("--window-records", type=int, default=defaults.window_records)
    parser.add_argument("--latency-rates", default=",".join(map(str, defaults.latency_rates)))
    parser.add_argument("--latency-seconds", type=float, default=defaults.latency_seconds)
    parser.add_argument("--latency-saturate", type=int, default=defaults.latency_saturate,
                        help="callbacks/s for the one-vs-two-workers runs (0: none)")
    parser.add_argument("--recovery-orders", type=int, default=defaults.recovery_orders)
    parser.add_argument("--recovery-dedup-ids", type=int, default=defaults.recovery_dedup_ids)
    parser.add_argument("--state-orders", type=int, default=defaults.state_orders)
    parser.add_argument("--restart-orders", default=",".join(map(str, defaults.restart_orders)))
    parser.add_argument("--failover-orders", type=int, default=defaults.failover_orders)
    parser.add_argument("--scaleout-rate", type=int, default=defaults.scaleout_rate)
    parser.add_argument("--out", type=Path, default=REPO / "bench")
    parser.add_argument("--kafka-port", type=int, default=19192)
    parser.add_argument("--profile", action="store_true",
                        help="one more throughput run under py-spy, recorded in RESULTS.md")
    args = parser.parse_args()
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    sizes = Sizes(args.orders, args.perf_records, args.peer_records,
                  tuple(r.strip() for r in args.latency_rates.split(",")),
                  args.latency_seconds, args.latency_saturate,
                  args.recovery_orders, args.recovery_dedup_ids, args.state_orders,
                  tuple(int(n) for n in args.restart_orders.split(",")), args.failover_orders,
                  args.scaleout_rate, window_records=args.window_records)
    results = run(sizes, args.reps, args.out, _broker(args.kafka_port), sections, args.profile)
    print(markdown(results))


if __name__ == "__main__":
    main()
