"""Account balances, derived only from the ledger on topup.credits.

The ledger is the truth; a balance is a cache that a replay of topup.credits rebuilds.
Entries are applied once per entry_id, so a duplicate on the ledger (which the order
stage never writes, but a consumer must not assume) cannot move a balance twice.

The applied-entry set is bounded in event time: an entry_id is remembered for
`TOPUP_LEDGER_DEDUP_DAYS` of the partition's ledger clock (the largest `created_at` seen)
after it was applied, then removed with a tombstone, so the store and its changelog (and
with them a restore) stay bounded. Only the clock decides, never the wall clock, so a
replay of the ledger removes the same ids at the same records.
"""

from __future__ import annotations

from typing import Any

from streams import topics
from streams.codecs import SchemaCatalog
from streams.config import Settings
from streams.domain.ledger import apply_entry
from streams.metrics import Metrics
from streams.runtime.context import Context, Table
from streams.runtime.stage import Stage
from streams.runtime.store import StoreSpec
from streams.stages.decoding import avro_decoder
from streams.stages.state_family import STATE

BALANCES = StoreSpec("balances", family=STATE)
APPLIED = StoreSpec("balance-entries", family=STATE)
DAY_MS = 24 * 60 * 60 * 1000
# Index keys sort after every entry_id (hex): the ledger clock, and one key per remembered
# entry ordered by when it may be forgotten, so a sweep reads only what is due.
CLOCK_KEY = "~clock"
FORGET_PREFIX = "~forget|"
# Each record applies at most one entry, so removing a few due ones per record keeps the
# set within its bound while a handler's work stays bounded too.
FORGETS_PER_RECORD = 16


def forget_key(due_ms: int, entry_id: str) -> str:
    # Fixed width, so key order is time order for any time a long holds that is not negative.
    return f"{FORGET_PREFIX}{due_ms:020d}|{entry_id}"


def forget_due(applied: Table, clock_ms: int) -> int:
    """Removes the remembered entries due at `clock_ms`, oldest first; how many."""
    due = applied.scan(FORGET_PREFIX, forget_key(clock_ms + 1, ""), limit=FORGETS_PER_RECORD)
    for key, _ in due:
        del applied[key]
        del applied[key.rsplit("|", 1)[1]]
    return len(due)


def stage(settings: Settings, catalog: SchemaCatalog, metrics: Metrics) -> Stage:
    window_ms = settings.ledger_dedup_days * DAY_MS
    metrics.describe("topup_ledger_entries_forgotten_total",
                     "Applied entry ids removed from the balance stage's dedup set")

    def handle(ctx: Context, entry: dict[str, Any]) -> None:
        applied, balances = ctx.table(APPLIED.name), ctx.table(BALANCES.name)
        clock = advance_clock(applied, entry["created_at"])
        # Due ones go first, so an entry applied exactly a window ago is already forgotten.
        forget(applied, clock)
        if applied.get(entry["entry_id"]) is not None:
            metrics.inc("topup_ledger_duplicates_total")
            return
        applied[entry["entry_id"]] = entry["created_at"]
        applied[forget_key(clock + window_ms, entry["entry_id"])] = 1
        # An overflow raises (streams.domain.ledger): the entry is dead-lettered and the
        # balance stays as it was.
        balances[entry["account_id"]] = apply_entry(balances.get(entry["account_id"]), entry)

    def forget(applied: Table, clock: int) -> None:
        if forgotten := forget_due(applied, clock):
            metrics.inc("topup_ledger_entries_forgotten_total", forgotten)

    def on_tick(ctx: Context, advance_ms: int) -> None:
        # A quiet ledger partition: its clock moves on by the wall-clock time that passed
        # (the runtime's tick, a record), so remembered ids still go when no entry comes.
        applied = ctx.table(APPLIED.name)
        forget(applied, advance_clock(applied, (applied.get(CLOCK_KEY) or 0) + advance_ms))

    return Stage("balances", (topics.CREDITS,), (BALANCES, APPLIED),
                 avro_decoder(catalog, "LedgerEntry"), handle, on_tick=on_tick)


def advance_clock(applied: Table, event_time: int) -> int:
    """The partition's ledger clock moved to `event_time`, never back; the clock."""
    clock = max(applied.get(CLOCK_KEY) or 0, event_time)
    if clock != applied.get(CLOCK_KEY):
        applied[CLOCK_KEY] = clock
    return clock
