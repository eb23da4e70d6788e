"""Issue 16: a quiet system still moves the clocks that bound state. With no input, the
runtime's idle ticks move the velocity stage's partition clocks (which remove old rows)
and the balance stage's ledger clocks (which forget applied entry ids) on by the
wall-clock time that passes; read back from the stores' changelogs."""

from __future__ import annotations

import time
from collections.abc import Callable

from streams import topics, wire
from streams.config import Settings
from streams.kafka_clients import read_committed
from streams.runtime.store import StoreSpec
from streams.stages.balances import APPLIED, CLOCK_KEY
from streams.stages.risk import VELOCITY
from tests.integration.flow import Flow
from tests.integration.store_checks import pay, state_env
from tests.kafka_harness import WorkerProcess, decode_all, read_until, settings_from

IDLE_S = 1
# How far the clocks must move with no input at all: several idle periods, so neither
# one tick nor an input still in flight can pass for it.
QUIET_ADVANCE_MS = 4_000

Clocks = dict[tuple[int, str], list[int]]


def _clocks(settings: Settings, store: StoreSpec, is_clock: Callable[[str], bool]) -> Clocks:
    """The values each clock key of the store took on its changelog, in order."""
    records = read_committed(settings, [store.changelog(settings.app_id)],
                             until=time.monotonic() + 20, idle_s=1.0)
    clocks: Clocks = {}
    for record in records:
        key = store.own_key(record.key)
        if key is None or record.value is None or not is_clock(key):
            continue
        value = wire.loads(record.value)
        at = value["watermark"] if isinstance(value, dict) else value
        clocks.setdefault((record.partition, key), []).append(at)
    return clocks


def _latest(clocks: Clocks) -> int:
    return max((values[-1] for values in clocks.values()), default=0)


def _until_past(settings: Settings, store: StoreSpec, is_clock: Callable[[str], bool],
                past: int, worker: WorkerProcess) -> Clocks:
    deadline = time.monotonic() + 90
    clocks: Clocks = {}
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.log()
        clocks = _clocks(settings, store, is_clock)
        if _latest(clocks) >= past:
            return clocks
    raise AssertionError(f"{store.name} clocks stayed at {_latest(clocks)}, wanted {past}")


def _is_ledger_clock(key: str) -> bool:
    return key == CLOCK_KEY


def _is_velocity_clock(key: str) -> bool:
    return key.startswith("~clock-p")


def test_a_quiet_system_moves_the_velocity_and_ledger_clocks_on(kafka_env, workers):
    env = {**state_env(kafka_env), "TOPUP_IDLE_ADVANCE_S": str(IDLE_S)}
    settings = settings_from(env)
    worker = workers.start(**env)
    expected = pay(Flow(settings), 0, 3)
    credits = decode_all(read_until(
        settings, [topics.CREDITS],
        lambda rs: {c["entry_id"] for c in decode_all(rs, topics.CREDITS)} >= expected,
        timeout_s=180, workers=[worker]), topics.CREDITS)
    # Nothing more is sent. Without ticks a ledger clock stays at the largest created_at.
    last_entry_at = max(c["created_at"] for c in credits)
    ledger = _until_past(settings, APPLIED, _is_ledger_clock,
                         last_entry_at + QUIET_ADVANCE_MS, worker)

    # By now every input has long been handled, so only ticks can move the velocity
    # clocks from where they stand.
    standing = _latest(_clocks(settings, VELOCITY, _is_velocity_clock))
    assert standing > 0, "the velocity stage saw no observation"
    velocity = _until_past(settings, VELOCITY, _is_velocity_clock,
                           standing + QUIET_ADVANCE_MS, worker)

    # Ticks move each clock on, never back.
    for values in [*ledger.values(), *velocity.values()]:
        assert values == sorted(values)
