"""Issue 19's windowed peer benchmark, our side: three tumbling windows over five dimensions.

The semantics, shared with bench/peer_window_quix.py and the reference in bench/peer_window.py:
each attempt `{"event_id","user_id","device_id","ip","card_token","merchant_id",
"occurred_at"}` falls, for each dimension d in DIMENSIONS and each size s in WINDOWS_MS, into
the tumbling window [start, start + s) with start = occurred_at - occurred_at % s (epoch
aligned, as Quix's). For each attempt and each (d, s), the count of attempts with the same
value of d in that window so far, this one included, is emitted: Quix's `.count().current()`.
The grace period covers the whole run, so no attempt is late on either side: lateness is not
what is compared. As a multiset of (dimension, value, size, start, count) the outputs do not
depend on the order in which attempts reach a key, so both sides can be checked exactly.

Ours is two stages of one worker, exactly-once: `window-fanout` re-keys every attempt once
per dimension onto one internal topic (key "dimension:value", value occurred_at), and
`window-count` keeps one count per (key, size, window start) and emits one record per
dimension carrying all three counts. Quix emits one record per dimension and window (15 per
attempt); the harness compares both as the same 15 tuples per attempt.

`python -m bench.window_step --bootstrap ... --input ... --by-dimension ... --output ...
--app-id ... --state-dir ... --started-file ...` runs our worker until SIGTERM.
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

from bench.shared_step import BASE_TIME_MS, MAX_GAP_MS, settings_for
from streams.codecs import DecodeError, default_catalog
from streams.kafka_clients import producer
from streams.metrics import Metrics
from streams.runtime.context import Context, Record, Send
from streams.runtime.stage import Stage
from streams.runtime.store import StoreSpec
from streams.runtime.worker import Worker
from streams.worker_config import runtime_config

# (dimension, attribute, distinct values): a few attempts per value per hour for most.
DIMENSIONS = (
    ("user", "user_id", 2_000),
    ("device", "device_id", 3_000),
    ("ip", "ip", 5_000),
    ("card", "card_token", 2_500),
    ("merchant", "merchant_id", 200),
)
WINDOWS_MS = (60_000, 600_000, 3_600_000)
# Longer than any run's span of event time (records x MAX_GAP_MS), so nothing is ever late.
GRACE_MS = 30 * 24 * 3_600_000

WINDOW_COUNTS = StoreSpec("window-counts")

Tuple15 = tuple[str, str, int, int, int]  # (dimension, value, size, start, count)


def attempts(records: int, seed: int = 1) -> list[dict[str, Any]]:
    """The input, in produce order: distinct attempts with event time rising."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    at = BASE_TIME_MS
    for index in range(records):
        at += rng.randrange(MAX_GAP_MS + 1)
        attempt: dict[str, Any] = {"event_id": f"evt-{seed}-{index:08d}"}
        for dimension, attribute, values in DIMENSIONS:
            attempt[attribute] = f"{dimension}-{rng.randrange(values):05d}"
        attempt["occurred_at"] = at
        out.append(attempt)
    return out


def produce_attempts(bootstrap: str, topic: str, records: int, seed: int = 1) -> None:
    out = producer(settings_for(bootstrap), **{"linger.ms": 20, "batch.num.messages": 10_000})
    for index, attempt in enumerate(attempts(records, seed)):
        out.produce(topic, key=attempt["user_id"].encode(),
                    value=json.dumps(attempt, separators=(",", ":")).encode())
        if index % 5_000 == 0:
            out.poll(0)
    if out.flush(120):
        raise RuntimeError("the windowed step's workload was not fully produced")


def window_start(at: int, size: int) -> int:
    return at - at % size


def our_tuples(key: bytes, value: bytes) -> list[Tuple15]:
    """One of our output records as the tuples it stands for."""
    dimension, _, dimension_value = key.decode().partition(":")
    body = json.loads(value)
    at = body["at"]
    return [(dimension, dimension_value, size, window_start(at, size), count)
            for size, count in zip(WINDOWS_MS, body["counts"], strict=True)]


def window_stages(input_topic: str, by_dimension: str, output_topic: str,
                  on_first_record: Callable[[], None]) -> tuple[Stage, Stage]:
    first = [True]

    def decode_attempt(record: Record) -> dict[str, Any]:
        if first[0]:
            # The timing starts at the first record handed to the step, as on the peer.
            first[0] = False
            on_first_record()
        try:
            return json.loads(record.value or b"")
        except ValueError as exc:
            raise DecodeError("UNDECODABLE", f"not a JSON attempt: {exc}") from None

    def fan_out(ctx: Context, attempt: dict[str, Any]) -> None:
        at = str(attempt["occurred_at"]).encode()
        for dimension, attribute, _ in DIMENSIONS:
            ctx.send(Send(by_dimension, f"{dimension}:{attempt[attribute]}".encode(), at))

    def decode_at(record: Record) -> int:
        try:
            return int(record.value or b"")
        except ValueError as exc:
            raise DecodeError("UNDECODABLE", f"not an event time: {exc}") from None

    def count(ctx: Context, at: int) -> None:
        counts = ctx.table(WINDOW_COUNTS.name)
        key = ctx.record.key or b""
        prefix = key.decode()
        current = []
        for size in WINDOWS_MS:
            window = f"{prefix}|{size}|{window_start(at, size)}"
            now = (counts.get(window) or 0) + 1
            counts[window] = now
            current.append(now)
        ctx.send(Send(output_topic, key, json.dumps({"at": at, "counts": current},
                                                   separators=(",", ":")).encode()))

    fanout = Stage("window-fanout", (input_topic,), (), decode_attempt, fan_out,
                   outputs=(by_dimension,))
    counter = Stage("window-count", (by_dimension,), (WINDOW_COUNTS,), decode_at, count,
                    outputs=(output_topic,))
    return fanout, counter


def run_worker(bootstrap: str, input_topic: str, by_dimension: str, output_topic: str,
               app_id: str, state_dir: Path, started_file: Path) -> None:
    """Our worker on the windowed step, exactly-once, until SIGTERM or SIGINT."""
    def mark_started() -> None:
        started_file.write_text(repr(time.monotonic()))

    stages = window_stages(input_topic, by_dimension, output_topic, mark_started)
    worker = Worker(runtime_config(settings_for(bootstrap, app_id, state_dir)), list(stages),
                    default_catalog(), Metrics())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    worker.run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.window_step", description=__doc__)
    for name in ("bootstrap", "input", "by-dimension", "output", "app-id", "state-dir",
                 "started-file"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run_worker(args.bootstrap, args.input, args.by_dimension, args.output, args.app_id,
               Path(args.state_dir), Path(args.started_file))


if __name__ == "__main__":
    main()
