"""Test and bench hook: a worker's assignments and processed partitions, as JSON lines.

With `TOPUP_TEST_ASSIGNMENT_LOG` set to a path, the worker appends one line per rebalance
callback (what the group protocol handed over or took back, before any co-partitioning
check) and one per committed batch (the topic partitions it handled), each with the wall
time. tests/integration/test_rebalancing.py checks co-partitioning against the protocol's
own callbacks; bench/scale_out.py measures how long partitions stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable

ENV = "TOPUP_TEST_ASSIGNMENT_LOG"


class AssignmentLog:
    def __init__(self, path: str | None = None) -> None:
        self.path = path if path is not None else os.environ.get(ENV) or None

    def write(self, event: str, tps: Iterable[tuple[str, int]]) -> None:
        if self.path is None:
            return
        line = json.dumps({"t": time.time(), "pid": os.getpid(), "event": event,
                           "tps": sorted(tps)})
        # One write per line in append mode: lines from one process never interleave.
        with open(self.path, "a") as out:
            out.write(line + "\n")
