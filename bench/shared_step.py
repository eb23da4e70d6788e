"""Issue 7's peer benchmark, our side: one step, dedup + per-user velocity, on our runtime.

The step: a payment attempt `{"event_id","user_id","amount_minor","occurred_at"}` keyed by
user_id is dropped when its event_id was seen before; otherwise the user's attempts in the
trailing hour of event time, (occurred_at - 1h, occurred_at], are counted and
`{"event_id","user_id","attempts_1h"}` goes out keyed by user_id. bench/peer_quix.py is the
same step in Quix Streams; bench/peer.py runs both over one input topic and compares.

The window is an exact sliding one (a list of timestamps pruned by event time), not the
bucketed windows of streams.domain.risk.velocity: the peer must compute the same numbers, and
`observe` also keeps 1m and 24h windows, distinct accounts and promotions that the peer
would not, so timing it would not compare like with like. What is ours here is the whole
runtime: Worker, Stage, StoreSpec, Table, the transactional batch and its changelogs.

`python -m bench.shared_step --bootstrap ... --input ... --output ... --app-id ...
--state-dir ... --started-file ...` runs our worker on the step until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.admin import create_topics
from streams.codecs import DecodeError, default_catalog
from streams.config import Settings
from streams.kafka_clients import producer
from streams.metrics import Metrics
from streams.runtime.context import Context, Record, Send
from streams.runtime.stage import Stage
from streams.runtime.store import StoreSpec
from streams.runtime.worker import Worker
from streams.topics import TopicSpec
from streams.worker_config import runtime_config

PARTITIONS = 4
USERS = 2_000
DUPLICATE_SHARE = 0.10
# A re-sent event is one of the last few first sightings: providers retry soon after.
RESEND_FROM_LAST = 200
BASE_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
# Mean gap 500 ms: ~7,200 attempts an hour over 2,000 users, a few per user per window.
MAX_GAP_MS = 1_000
HOUR_MS = 3_600_000
# Records per transaction on both sides (our Worker's batch, Quix's commit_every).
BATCH = 500

SEEN = StoreSpec("step-seen")
VELOCITY = StoreSpec("step-velocity")


def settings_for(bootstrap: str, app_id: str = "bench-step", state_dir: Path | None = None,
                 ) -> Settings:
    return Settings(bootstrap_servers=bootstrap, app_id=app_id, partitions=PARTITIONS,
                    state_dir=state_dir or Path(".state"), batch_max_records=BATCH)


def create_step_topics(bootstrap: str, *names: str) -> None:
    # Plain delete-policy topics with the broker's partition count of the contract.
    create_topics(settings_for(bootstrap), tuple(TopicSpec(name, None) for name in names))


def attempts(records: int, seed: int = 1) -> list[dict[str, Any]]:
    """The input, in produce order: `records` attempts, ~10% of them exact re-sends."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    firsts: list[dict[str, Any]] = []
    at = BASE_TIME_MS
    for _ in range(records):
        if firsts and rng.random() < DUPLICATE_SHARE:
            out.append(rng.choice(firsts[-RESEND_FROM_LAST:]))
            continue
        at += rng.randrange(MAX_GAP_MS + 1)
        attempt = {
            "event_id": f"evt-{seed}-{len(firsts):08d}",
            "user_id": f"user-{rng.randrange(USERS):04d}",
            "amount_minor": rng.randrange(100, 100_000),
            "occurred_at": at,
        }
        firsts.append(attempt)
        out.append(attempt)
    return out


def produce_attempts(bootstrap: str, topic: str, records: int, seed: int = 1) -> int:
    """Produces the workload once; returns how many distinct events it holds."""
    out = producer(settings_for(bootstrap), **{"linger.ms": 20, "batch.num.messages": 10_000})
    unique: set[str] = set()
    for index, attempt in enumerate(attempts(records, seed)):
        unique.add(attempt["event_id"])
        out.produce(topic, key=attempt["user_id"].encode(),
                    value=json.dumps(attempt, separators=(",", ":")).encode())
        if index % 5_000 == 0:
            out.poll(0)
    if out.flush(120):
        raise RuntimeError("the step's workload was not fully produced")
    return len(unique)


def trailing_hour(times: list[int], at: int) -> list[int]:
    """The user's attempt times in (at - 1h, at], this one included."""
    kept = [t for t in times if t > at - HOUR_MS]
    kept.append(at)
    return kept


def step_stage(input_topic: str, output_topic: str, on_first_record: Callable[[], None]
               ) -> Stage:
    first = [True]

    def decode(record: Record) -> dict[str, Any]:
        if first[0]:
            # The timing starts at the first record handed to the step, as on the peer.
            first[0] = False
            on_first_record()
        try:
            return json.loads(record.value or b"")
        except ValueError as exc:
            raise DecodeError("UNDECODABLE", f"not a JSON attempt: {exc}") from None

    def handle(ctx: Context, attempt: dict[str, Any]) -> None:
        seen = ctx.table(SEEN.name)
        event_id = attempt["event_id"]
        if seen.get(event_id) is not None:
            return
        seen[event_id] = attempt["occurred_at"]
        velocity = ctx.table(VELOCITY.name)
        user_id = attempt["user_id"]
        times = trailing_hour(velocity.get(user_id) or [], attempt["occurred_at"])
        velocity[user_id] = times
        answer = {"event_id": event_id, "user_id": user_id, "attempts_1h": len(times)}
        ctx.send(Send(output_topic, ctx.record.key,
                      json.dumps(answer, separators=(",", ":")).encode()))

    return Stage("shared-step", (input_topic,), (SEEN, VELOCITY), decode, handle,
                 outputs=(output_topic,))


def run_worker(bootstrap: str, input_topic: str, output_topic: str, app_id: str,
               state_dir: Path, started_file: Path) -> None:
    """Our worker on the step, exactly-once, until SIGTERM or SIGINT."""
    def mark_started() -> None:
        started_file.write_text(repr(time.monotonic()))

    stage = step_stage(input_topic, output_topic, mark_started)
    worker = Worker(runtime_config(settings_for(bootstrap, app_id, state_dir)), [stage],
                    default_catalog(), Metrics())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    worker.run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shared_step", description=__doc__)
    for name in ("bootstrap", "input", "output", "app-id", "state-dir", "started-file"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run_worker(args.bootstrap, args.input, args.output, args.app_id, Path(args.state_dir),
               Path(args.started_file))


if __name__ == "__main__":
    main()
