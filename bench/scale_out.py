"""Scale-out: 1 -> 2 -> 3 -> 2 workers while traffic flows, under each group protocol.

Orders and their signed callbacks are written at a steady rate to every partition. Every
worker logs what it processed and when (the TOPUP_TEST_ASSIGNMENT_LOG hook,
streams/runtime/assignment_log.py). For each rebalance (a worker started, or one stopped
with SIGTERM) and each partition number, the longest gap between two batches that
handled it, from the rebalance's start until every partition is handled again:

- a partition that stayed on its worker: how long it stopped (goal: under 1 s), apart
  for workers that were handed partitions in the same rebalance ("stayed, took"): they
  restore those on their processing thread, which stops the partitions they keep;
- a partition that moved: from its last batch on the old owner to its first on the new.

The baseline is the longest such gap over the same span of steady traffic before the
first rebalance. Run once with the eager `range` protocol ("classic") and once with
KIP-848 ("consumer"), topics recreated between them, in the same process.

Every topic of the broker is recreated first: use a broker of the benchmark's own.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

from bench.harness import recreate_topics
from bench.worker_process import BenchWorker
from bench.workload import order_and_callback
from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings, load_settings
from streams.kafka_clients import producer

PARTITIONS = 4
READY_TIMEOUT_S = 120.0
SETTLE_TIMEOUT_S = 120.0
# After every partition is handled again, traffic keeps flowing this long inside the
# measured span, so that a late stop is seen.
AFTER_SETTLED_S = 3.0
PROTOCOLS = ("classic", "consumer")


class Traffic:
    """Orders and callbacks at `rate` orders per second until stopped."""

    def __init__(self, settings: Settings, rate: int) -> None:
        self.settings, self.rate = settings, rate
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        catalog, rng = default_catalog(), random.Random(7)
        out = producer(self.settings, **{"linger.ms": 5})
        run_id, start, index = f"scale-{uuid.uuid4().hex[:6]}", time.monotonic(), 0
        while not self.stopped.is_set():
            while (wait := start + index / self.rate - time.monotonic()) > 0:
                out.poll(wait)
            order, callback = order_and_callback(run_id, index, rng)
            out.produce(topics.ORDERS, key=order["order_id"],
                        value=catalog.encode("OrderEvent", order))
            out.produce(topics.WEBHOOKS, key=order["order_id"],
                        value=catalog.encode("WebhookDelivery", callback))
            out.poll(0)
            index += 1
        out.flush(30)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join(60)


def _events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _whole(events: list[dict]) -> dict[int, set[int]]:
    """Partition numbers each live process holds on every topic, now."""
    held: dict[int, set[tuple[str, int]]] = defaultdict(set)
    subscribed: set[str] = set()
    for event in events:
        tps = {(t, p) for t, p in event["tps"]}
        if event["event"] == "assigned":
            held[event["pid"]] |= tps
            subscribed |= {t for t, _ in tps}
        elif event["event"] == "revoked":
            held[event["pid"]] -= tps
    return {pid: {p for _, p in tps if all((t, p) in tps for t in subscribed)}
            for pid, tps in held.items()}


def _wait_settled(path: Path, live: list[BenchWorker], since: float) -> float:
    """Until the live workers (and only they) hold every partition number and have
    handled each of theirs since `since`; returns when."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    pids = {worker.process.pid for worker in live}
    while time.monotonic() < deadline:
        for worker in live:
            worker.check_alive()
        events = _events(path)
        whole = _whole(events)
        owners = {p: pid for pid, ps in whole.items() if pid in pids for p in ps}
        if len(owners) == PARTITIONS and all(whole.get(pid) for pid in pids):
            handled = {(e["pid"], p) for e in events if e["event"] == "processed"
                       and e["t"] >= since for _, p in e["tps"]}
            if all((pid, p) in handled for p, pid in owners.items()):
                return time.time()
        time.sleep(0.2)
    raise RuntimeError(f"workers did not settle in {SETTLE_TIMEOUT_S}s; see {path}")


def _gaps(events: list[dict], start: float, end: float
          ) -> dict[int, tuple[str, float]]:
    """Per partition number: how it fared over the span ("moved"; "stayed, took": stayed on
    a worker that was handed partitions meanwhile, and restored them on its processing
    thread; "stayed"), and the longest gap between batches handling it, counting the last
    batch before the span and the first after."""
    handled: dict[int, list[tuple[float, int]]] = defaultdict(list)
    took = {e["pid"] for e in events if e["event"] == "assigned" and e["tps"]
            and start <= e["t"] <= end}
    for event in events:
        if event["event"] == "processed":
            for p in {p for _, p in event["tps"]}:
                handled[p].append((event["t"], event["pid"]))
    result = {}
    for p, batches in handled.items():
        batches.sort()
        before = [b for b in batches if b[0] < start][-1:]
        inside = [b for b in batches if start <= b[0] <= end]
        after = [b for b in batches if b[0] > end][:1]
        span = before + inside + after
        if len(span) < 2:
            continue
        longest = max(b - a for a, b in pairwise(t for t, _ in span))
        owner = span[0][1]
        fate = ("moved" if owner != span[-1][1] else
                "stayed, took" if owner in took else "stayed")
        result[p] = (fate, longest)
    return result


def _summary(gaps: dict[int, tuple[str, float]]) -> dict[str, float]:
    """The longest gap of each fate, and how many partitions moved."""
    figures = {f"{fate} max s": max((gap for f, gap in gaps.values() if f == fate),
                                    default=0.0)
               for fate in ("stayed", "stayed, took", "moved")}
    return {**figures, "moved": float(sum(f == "moved" for f, _ in gaps.values()))}


def run_protocol(bootstrap: str, protocol: str, rate: int, steady_s: float = 8.0
                 ) -> dict[str, float]:
    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    recreate_topics(settings)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    log = work / "assignments.jsonl"
    app_id = f"bench-scale-{protocol}-{uuid.uuid4().hex[:6]}"
    env = {"TOPUP_GROUP_PROTOCOL": protocol, "TOPUP_TEST_ASSIGNMENT_LOG": str(log),
           "TOPUP_SESSION_TIMEOUT_S": "10"}

    def start(name: str) -> BenchWorker:
        return BenchWorker(bootstrap, app_id, work / name, env=env)

    figures: dict[str, float] = {}
    live = [start("w1")]
    try:
        live[0].wait_ready(READY_TIMEOUT_S)
        with Traffic(settings, rate):
            _wait_settled(log, live, 0.0)
            quiet_start = time.time()
            time.sleep(steady_s)  # the steady span the baseline is measured over
            baseline = _gaps(_events(log), quiet_start, time.time())
            figures["baseline max gap s"] = max(gap for _, gap in baseline.values())
            for label, change in (("1->2", "start"), ("2->3", "start"), ("3->2", "stop")):
                began = time.time()
                if change == "start":
                    live.append(start(f"w{len(live) + 1}"))
                else:
                    live.pop().stop()
                settled = _wait_settled(log, live, began)
                time.sleep(AFTER_SETTLED_S)
                summary = _summary(_gaps(_events(log), began, settled + AFTER_SETTLED_S))
                figures |= {f"{label} {name}": value for name, value in summary.items()}
                figures[f"{label} settled s"] = settled - began
    finally:
        for worker in live:
            worker.stop()
    return figures


def run_scale_out(bootstrap: str, rate: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for protocol in PROTOCOLS:
        figures |= {f"{protocol} {name}": value
                    for name, value in run_protocol(bootstrap, protocol, rate).items()}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:19192")
    parser.add_argument("--rate", type=int, default=100, help="orders per second")
    args = parser.parse_args()
    print(json.dumps(run_scale_out(args.bootstrap, args.rate), indent=2))


if __name__ == "__main__":
    main()
