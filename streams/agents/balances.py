"""Account balances, derived only from the ledger on topup.credits.

The ledger is the truth; a balance is a cache that a replay of topup.credits rebuilds.
Entries are applied once per entry_id, so a duplicate on the ledger (which the order
stage never writes, but a consumer must not assume) cannot move a balance twice.
"""

from __future__ import annotations

from typing import Any

from streams import topics
from streams.agents.decoding import avro_decoder
from streams.codecs import SchemaCatalog
from streams.domain.int64 import checked_add
from streams.metrics import Metrics
from streams.runtime.context import Context
from streams.runtime.stage import Stage
from streams.runtime.store import StoreSpec

SIGN = {"CREDIT": 1, "DEBIT": -1, "REVERSAL": -1}
BALANCES = StoreSpec("balances")
APPLIED = StoreSpec("balance-entries")


def apply_entry(balance: dict[str, int] | None, entry: dict[str, Any]) -> dict[str, int]:
    """Balance per currency in minor units: credits add amount and bonus, debits remove."""
    updated = dict(balance or {})
    delta = SIGN[entry["op"]] * checked_add(entry["amount_minor"], entry["bonus_minor"])
    # An overflow raises: the entry is dead-lettered and the balance stays as it was.
    updated[entry["currency"]] = checked_add(updated.get(entry["currency"], 0), delta)
    return updated


def stage(catalog: SchemaCatalog, metrics: Metrics) -> Stage:
    def handle(ctx: Context, entry: dict[str, Any]) -> None:
        applied, balances = ctx.table(APPLIED.name), ctx.table(BALANCES.name)
        if applied.get(entry["entry_id"]) is not None:
            metrics.inc("topup_ledger_duplicates_total")
            return
        applied[entry["entry_id"]] = entry["created_at"]
        balances[entry["account_id"]] = apply_entry(balances.get(entry["account_id"]), entry)

    return Stage("balances", (topics.CREDITS,), (BALANCES, APPLIED),
                 avro_decoder(catalog, "LedgerEntry"), handle)
