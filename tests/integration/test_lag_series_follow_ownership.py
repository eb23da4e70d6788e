"""A worker reports consumer lag only for the partitions it owns: once a second worker
takes half of them, the first one's /metrics drops their series. A stale series would keep
its last value, and an alert on it firing, for what another worker now does."""

from __future__ import annotations

import re

from streams import topics
from tests.chaos.harness import wait_for
from tests.chaos.state_harness import member_partitions
from tests.integration.flow import Flow
from tests.integration.store_checks import credits_until, pay, state_env
from tests.kafka_harness import WorkerProcess, http, settings_from

_ORDERS_LAG = re.compile(
    r'^topup_consumer_lag_records\{partition="(\d+)",topic="topup\.orders"\}', re.M)


def _lag_partitions(worker: WorkerProcess) -> set[int]:
    _, body = http("GET", f"http://127.0.0.1:{worker.web_port}/metrics")
    return {int(p) for p in _ORDERS_LAG.findall(body.decode())}


def test_lag_series_leave_with_the_partitions(kafka_env, workers):
    env = state_env(kafka_env)
    settings = settings_from(env)
    first = workers.start("first", **env)
    flow = Flow(settings)
    credits_until(settings, pay(flow, 0, 40), first)
    wait_for("lag reported for every orders partition",
             lambda: _lag_partitions(first) == set(range(settings.partitions)), 120)

    second = workers.start("second", **env)

    def split() -> bool:
        owned = [m.get(topics.ORDERS, set()) for m in member_partitions(settings)]
        return len(owned) == 2 and all(owned)

    wait_for("the orders partitions split between two workers", split, 120)
    credits_until(settings, pay(flow, 40, 40), second)
    wait_for("each worker's lag series only for its own partitions",
             lambda: bool(_lag_partitions(second))
             and not _lag_partitions(first) & _lag_partitions(second), 120)
