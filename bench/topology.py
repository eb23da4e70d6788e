"""Our full topology in one worker, exactly-once on, timed from its first consumed record
until every order is credited, read off its /metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.worker_process import BenchWorker

CREDITS_PUBLISHED = ("topup_records_published_total", 'topic="topup.credits"')


@dataclass(frozen=True)
class TopologyRun:
    seconds: float  # from the first consumed record until every order was credited
    records_handled: float  # consumed by the worker meanwhile, internal topics included


def run_topology(
    bootstrap: str, orders: int, timeout_s: float = 1800, wrap: list[str] | None = None
) -> TopologyRun:
    """Runs the worker until `orders` credits were published. `wrap` prefixes the worker's
    command line (a profiler)."""
    worker = BenchWorker(bootstrap, wrap=wrap)
    started = None
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            worker.check_alive()
            samples = worker.metrics()
            consumed = sum(worker.consumed(samples).values())
            if started is None and consumed > 0:
                started = time.monotonic()
            if started is not None and samples.get(CREDITS_PUBLISHED, 0.0) >= orders:
                return TopologyRun(time.monotonic() - started, consumed)
            time.sleep(0.1)
        raise RuntimeError(f"not every order credited in {timeout_s}s; see {worker.log_path}")
    finally:
        worker.stop()
