"""The framework floor: our runtime running a stage that only decodes and forwards.

The same Avro records as the ceiling, through the same Worker as the full topology
(exactly-once transactions, one consumer, batches of up to 2000), with no state and no domain
work: what the runtime itself costs. `python -m bench.floor ...` is the worker process;
`run_floor` times it from its first record to its last output readable (read_committed).
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer

from bench.ceiling import RECORD_OF
from streams.codecs import default_catalog
from streams.config import Settings
from streams.metrics import Metrics
from streams.runtime.context import Context, Record, Send
from streams.runtime.stage import Stage
from streams.runtime.worker import Worker
from streams.worker_config import runtime_config

OUT_TOPIC = "bench.floor.out"


def forward_stage(on_first_record: Path) -> Stage:
    catalog = default_catalog()
    first = [True]

    def decode(record: Record) -> tuple[str, dict]:
        if first[0]:
            first[0] = False
            on_first_record.write_text(repr(time.monotonic()))
        name = RECORD_OF[record.topic]
        return name, catalog.decode(name, record.value or b"")

    def handle(ctx: Context, decoded: tuple[str, dict]) -> None:
        name, value = decoded
        ctx.send(Send(OUT_TOPIC, ctx.record.key, catalog.encode(name, value)))

    return Stage("floor", tuple(RECORD_OF), (), decode, handle, outputs=(OUT_TOPIC,))


def _count_committed(bootstrap: str, expected: int, process: subprocess.Popen[bytes],
                     timeout_s: float) -> float:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-floor-reader-{uuid.uuid4().hex}",
        "isolation.level": "read_committed", "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([OUT_TOPIC])
    seen, deadline = 0, time.monotonic() + timeout_s
    try:
        while seen < expected:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"floor: {seen} of {expected} records forwarded")
            seen += sum(1 for m in consumer.consume(10_000, 0.1) if not m.error())
        return time.monotonic()
    finally:
        consumer.close()


def run_floor(settings: Settings, expected: int, timeout_s: float = 1200) -> float:
    """Seconds from the floor worker's first record to its last output committed."""
    work = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    started = work / "started"
    command = [sys.executable, "-m", "bench.floor", settings.bootstrap_servers,
               str(work / "state"), str(started)]
    with (work / "floor.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        finished = _count_committed(settings.bootstrap_servers, expected, process, timeout_s)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return finished - float(started.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("bootstrap")
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("started_file", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings(bootstrap_servers=args.bootstrap, state_dir=args.state_dir,
                        app_id=f"bench-floor-{uuid.uuid4().hex[:8]}")
    worker = Worker(runtime_config(settings), [forward_stage(args.started_file)],
                    default_catalog(), Metrics())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    worker.run()


if __name__ == "__main__":
    main()
