"""`rebuild balances`: every account's balance derived from `topup.credits` alone, and
compared with the live balances table (the balances store's changelog).

The ledger is the truth and a balance is a cache of it (DESIGN: balances are derived),
so this rebuild needs no stage and no state dir: it folds the ledger the way the balances
stage does (`apply_entry`, each entry_id once) and writes nothing to any topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from streams import topics, wire
from streams.config import Settings
from streams.domain.ledger import apply_entry
from streams.kafka_clients import ConsumedRecord
from streams.ops.ledger import ledger_entries
from streams.ops.scan import ProgressHook, scan
from streams.stages.balances import BALANCES

Balances = dict[str, dict[str, int]]  # account_id -> currency -> minor units


@dataclass(frozen=True)
class Difference:
    account_id: str
    rebuilt: dict[str, int] | None
    live: dict[str, int] | None

    def to_dict(self) -> dict:
        return asdict(self)


def balances_from_ledger(records: Iterable[ConsumedRecord]) -> Balances:
    balances: Balances = {}
    for entry in ledger_entries(records):
        balances[entry["account_id"]] = apply_entry(balances.get(entry["account_id"]), entry)
    return balances


def balances_from_changelog(records: Iterable[ConsumedRecord], changelog: str) -> Balances:
    """The live table: the last value per key of the store's changelog (None deletes)."""
    live: Balances = {}
    for record in records:
        if record.topic != changelog or (account := BALANCES.own_key(record.key)) is None:
            continue
        if record.value is None:
            live.pop(account, None)
        else:
            live[account] = wire.loads(record.value)
    return live


def differences(rebuilt: Balances, live: Balances) -> list[Difference]:
    """Every account whose balances differ; a zero balance equals an absent one."""
    def nonzero(balance: dict[str, int] | None) -> dict[str, int]:
        return {currency: amount for currency, amount in (balance or {}).items() if amount}

    return [
        Difference(account, rebuilt.get(account), live.get(account))
        for account in sorted(set(rebuilt) | set(live))
        if nonzero(rebuilt.get(account)) != nonzero(live.get(account))
    ]


def rebuild_balances(
    settings: Settings, verify: bool, progress: ProgressHook | None = None
) -> tuple[Balances, list[Difference] | None]:
    """The balances rebuilt from the ledger and, with `verify`, how the live table differs."""
    changelog = BALANCES.changelog(settings.app_id)
    names = [topics.CREDITS, changelog] if verify else [topics.CREDITS]
    records = scan(settings, names, progress=progress)
    rebuilt = balances_from_ledger(records)
    if not verify:
        return rebuilt, None
    return rebuilt, differences(rebuilt, balances_from_changelog(records, changelog))
