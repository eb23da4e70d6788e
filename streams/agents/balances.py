"""Account balances, derived only from the ledger on topup.credits.

The ledger is the truth; a balance is a cache that a replay of topup.credits rebuilds.
Entries are applied once per entry_id, so a duplicate on the ledger (which the order
agent never writes, but a consumer must not assume) cannot move a balance twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams import topics
from streams.agents.io import avro_decoder, process

if TYPE_CHECKING:
    from faust.types import EventT

    from streams.app import Pipeline

SIGN = {"CREDIT": 1, "DEBIT": -1, "REVERSAL": -1}


def apply_entry(balance: dict[str, int] | None, entry: dict[str, Any]) -> dict[str, int]:
    """Balance per currency in minor units: credits add amount and bonus, debits remove."""
    updated = dict(balance or {})
    delta = SIGN[entry["op"]] * (entry["amount_minor"] + entry["bonus_minor"])
    updated[entry["currency"]] = updated.get(entry["currency"], 0) + delta
    return updated


def register(pipeline: Pipeline) -> None:
    app, settings = pipeline.app, pipeline.settings
    balances = app.Table("balances", default=None, key_type=str,
                         partitions=settings.partitions)
    applied = app.Table("balance-entries", default=None, key_type=str,
                        partitions=settings.partitions)
    pipeline.balances = balances

    async def handle(event: EventT, entry: dict[str, Any]) -> None:
        if applied.get(entry["entry_id"]) is not None:
            pipeline.metrics.inc("topup_ledger_duplicates_total")
            return
        applied[entry["entry_id"]] = entry["created_at"]
        balances[entry["account_id"]] = apply_entry(balances.get(entry["account_id"]), entry)

    @app.agent(pipeline.topics[topics.CREDITS], name="balances")
    async def balance_agent(stream):  # type: ignore[no-untyped-def]
        await process(pipeline, stream, avro_decoder(pipeline, "LedgerEntry"), handle)
