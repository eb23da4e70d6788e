"""When a velocity row goes: a timer on its partition's event time at the row's
`retire_at` plus a slack, removed (a tombstone on the changelog) once event time gets
there (the velocity stage's `on_due`). See topology.md, "State bounds", for the bound
and why the slack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams.domain.risk.velocity import VelocityConfig, VelocityState, retire_at
from streams.runtime.timers import to_the_hour

if TYPE_CHECKING:
    from streams.runtime.context import Table
    from streams.runtime.timers import Timers

# The timer's key for a row's removal; domain keys never start with '~'.
RETIRE = "~retire|"
# Rows looked at per record by the sweep of rows stored before rows had a wake.
SWEEP_ROWS = 4
# Rows removed per record at most: wakes are rounded to the hour, so an hour's rows come
# due together, and one record must not carry them all in its transaction. A record adds
# at most five rows (one per dimension) and the sweep four, so removal keeps up; a row
# kept a little past its time answers as no row would (`retire_at`).
RETIRES_PER_RECORD = 16


def keep_until(timers: Timers, key: str, state: VelocityState, config: VelocityConfig,
               slack_ms: int) -> None:
    # Rounded to the hour: the observations of a busy key within the hour write no wake.
    timers.schedule(RETIRE + key, to_the_hour(retire_at(state, config) + slack_ms))


def sweep_unwoken(table: Table, timers: Timers, partition: int,
                  config: VelocityConfig, slack_ms: int) -> None:
    """Rows stored before rows were removed carry no wake, and a value never seen again
    would stay for good: give a few rows their wake with each record, in key order, until
    every row has been looked at once. A row that already has its wake is left as it is
    (the same state gives the same wake)."""
    mark = f"~swept-p{partition}"
    progress = table.get(mark) or {"after": None, "done": False}
    if progress["done"]:
        return
    after = progress["after"]
    lo = "" if after is None else after + "\0"
    keys = [key for key, _ in table.scan(lo, "~", limit=SWEEP_ROWS)]
    for key in keys:
        state = table.load(key, VelocityState)
        if state is not None:
            keep_until(timers, key, state, config, slack_ms)
    done = len(keys) < SWEEP_ROWS
    table[mark] = {"after": None if done else keys[-1], "done": done}
