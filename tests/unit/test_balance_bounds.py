"""The balance stage's applied-entry set is bounded in ledger event time, with tombstones,
and still applies each entry_id once within its window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams import topics
from streams.codecs import default_catalog
from streams.config import Settings
from streams.metrics import Metrics
from streams.runtime.context import Context, Record
from streams.runtime.store import PartitionStore, encode_value
from streams.stages import balances
from tests.builders import DIRECTORY

DAY_MS = balances.DAY_MS
T0 = 1_700_000_000_000


class Ledger:
    """The balances stage over real local stores, each record committed on its own."""

    def __init__(self, tmp_path: Path, days: int = 1) -> None:
        self.stage = balances.stage(Settings(ledger_dedup_days=days), default_catalog(),
                                    Metrics())
        self.stores = {spec.name: PartitionStore(tmp_path / spec.name, None, "c")
                       for spec in self.stage.stores}
        self.changelog: list[tuple[str, Any]] = []
        self.offset = 0

    def apply(self, entry_id: str, at: int, amount: int = 100) -> None:
        entry = {"entry_id": entry_id, "account_id": "a-1", "op": "CREDIT", "currency": "USD",
                 "amount_minor": amount, "bonus_minor": 0, "created_at": at}
        self.offset += 1
        record = Record(topics.CREDITS, 0, self.offset, b"a-1", b"", at, [])
        ctx = Context(record, default_catalog(), Metrics(), self.stores,
                      {name: {} for name in self.stores}, directory=DIRECTORY)
        self.stage.handle(ctx, entry)
        for name, layer in ctx.layers.items():
            self.stores[name].write((key.encode(), encode_value(value))
                                    for key, value in layer.items())
            self.changelog += [(key, value) for key, value in layer.items()
                               if name == balances.APPLIED.name]

    def balance(self) -> int:
        return int(self.stores[balances.BALANCES.name].get("a-1")["USD"])

    def remembered(self) -> set[str]:
        return {key.decode() for key, _ in self.stores[balances.APPLIED.name].raw_items()
                if not key.startswith(b"~")}


def test_a_duplicate_within_the_window_is_not_applied_again(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.apply("le_1", T0)
    ledger.apply("le_2", T0 + DAY_MS // 2)
    ledger.apply("le_1", T0 + DAY_MS - 1)
    assert ledger.balance() == 200
    assert ledger.remembered() == {"le_1", "le_2"}


def test_entries_are_forgotten_a_window_after_they_were_applied_with_tombstones(
    tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path)
    for day in range(10):
        ledger.apply(f"le_{day}", T0 + day * DAY_MS)
    # Each applied entry was forgotten when the clock passed its day: one left, not ten.
    assert ledger.remembered() == {"le_9"}
    forget_keys = [key for key, _ in ledger.stores[balances.APPLIED.name].raw_items()
                   if key.startswith(balances.FORGET_PREFIX.encode())]
    assert len(forget_keys) == 1
    # The changelog carries the removals, so a restore from it is bounded too.
    tombstones = {key for key, value in ledger.changelog if value is None}
    assert {f"le_{day}" for day in range(9)} <= tombstones
    assert ledger.balance() == 1000


def test_the_clock_never_goes_back_so_an_old_entry_is_remembered_from_when_it_came(
    tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path)
    ledger.apply("le_new", T0 + 5 * DAY_MS)
    # A backfilled entry dated days earlier is applied and remembered for a whole window
    # from the ledger clock, not dropped at once for its old date.
    ledger.apply("le_old", T0)
    ledger.apply("le_old", T0 + 5 * DAY_MS + DAY_MS - 1)
    assert ledger.balance() == 200
    assert "le_old" in ledger.remembered()
    ledger.apply("le_later", T0 + 6 * DAY_MS)
    assert ledger.remembered() == {"le_later"}
