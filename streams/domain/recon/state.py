"""The per-order reconciliation state kept in a table keyed by order_id, the questions
asked of it, and what it still waits for.

It holds both sides: what the ledger did (credit and debit entries, plus the order stage's
latest snapshot) and what the provider settled (the first line per transaction), with the
watermark of the provider's closed batches. `decided` names every check already made, so
each fact is reported once however often or in whatever order its inputs arrive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.domain.recon.inputs import (
    EntryOp,
    LedgerEntry,
    OrderSnapshot,
    SettlementKind,
    SettlementLine,
    TxnKey,
    WatermarkAdvanced,
    parse_line,
)


class Check(StrEnum):
    """The questions asked of one order; each is answered once per fact."""

    LEDGER_VS_LINE = "ledger-vs-line"  # both sides present: do they agree?
    LINE_DUE = "line-due"  # a line past its grace: judged on what the ledger holds then
    UNSETTLED = "unsettled"  # a ledger entry the closed batches should hold but do not
    DUPLICATE = "duplicate"  # another line for a transaction that already has one
    REVERSED = "reversed"  # a credit taken back by a REVERSAL: owes the provider no line


def decision_key(check: Check, *identity: str | None) -> str:
    # JSON keeps the key readable in the table and unambiguous (None differs from "").
    return json.dumps([check.value, *identity], separators=(",", ":"))


def line_decision(check: Check, line: SettlementLine) -> str:
    return decision_key(check, *line.txn_key)


@dataclass(frozen=True, slots=True)
class SettledLine:
    """A line received for this order."""

    line: SettlementLine
    # Event time from which this line without its ledger entry is a break: the grace
    # counts from settlement, or from arrival for a file imported after the settlement.
    due_at: int

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line.to_record(), "due_at": self.due_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SettledLine:
        return cls(parse_line(data["line"]), data["due_at"])


@dataclass(frozen=True, slots=True)
class BookedEntry:
    """A credit or debit on the ledger for this order."""

    entry: LedgerEntry
    # The watermark from which this entry without a provider line is a break.
    covered_from: int

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry.to_dict(), "covered_from": self.covered_from}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BookedEntry:
        return cls(LedgerEntry.from_record(data["entry"]), data["covered_from"])


def _matches(entry: LedgerEntry, line: SettlementLine) -> bool:
    """Do this ledger entry and this line record the same money movement?"""
    # A line without the id it would match on matches nothing: it goes to a reviewer.
    if line.kind is SettlementKind.PAYMENT:
        return (
            entry.op is EntryOp.CREDIT
            and line.external_txn_id is not None
            and entry.external_txn_id == line.external_txn_id
        )
    if line.kind is SettlementKind.REFUND:
        return (
            entry.op is EntryOp.DEBIT
            and line.refund_id is not None
            and entry.refund_id == line.refund_id
        )
    return False


@dataclass(frozen=True, slots=True)
class Wake:
    """What a state still waits for, so the stage knows when to call again.

    `tick_at`: send a Tick at or after this event time. `watermark_key`: send this
    (provider, merchant_id)'s WatermarkAdvanced as it stands now and on every advance;
    nothing happens before covers_until reaches `covers_needed`. All None: the order is
    reconciled until a new input for it arrives.
    """

    tick_at: int | None
    watermark_key: tuple[str, str] | None
    covers_needed: int | None


@dataclass(frozen=True, slots=True)
class ReconState:
    order_id: str
    order: OrderSnapshot | None = None
    lines: tuple[SettledLine, ...] = ()  # the first line per transaction, in arrival order
    duplicates: tuple[SettledLine, ...] = ()  # further lines for a transaction in `lines`
    entries: tuple[BookedEntry, ...] = ()
    watermarks: tuple[WatermarkAdvanced, ...] = ()  # the highest per (provider, merchant)
    decided: frozenset[str] = frozenset()
    # Two checks can find the same fact (an amount differing from the order, and later
    # from the credit); a break id in here is never emitted again.
    break_ids: frozenset[str] = frozenset()

    @property
    def seen_record_ids(self) -> frozenset[str]:
        return frozenset(settled.line.record_id for settled in (*self.lines, *self.duplicates))

    def line_for(self, txn_key: TxnKey) -> SettledLine | None:
        return next((s for s in self.lines if s.line.txn_key == txn_key), None)

    def entry_for(self, line: SettlementLine) -> LedgerEntry | None:
        return next((b.entry for b in self.entries if _matches(b.entry, line)), None)

    def line_for_entry(self, entry: LedgerEntry) -> SettlementLine | None:
        return next((s.line for s in self.lines if _matches(entry, s.line)), None)

    @property
    def watermark_key(self) -> tuple[str, str] | None:
        """The (provider, merchant) whose closed batches must hold this order's lines."""
        if self.order is None:
            return None
        return (self.order.provider, self.order.merchant_id)

    @property
    def covers_until(self) -> int | None:
        key = self.watermark_key
        return next(
            (w.covers_until for w in self.watermarks if (w.provider, w.merchant_id) == key),
            None,
        )

    def undecided_lines(self) -> list[SettledLine]:
        """Lines neither compared with their ledger entry nor judged without one."""
        return [
            settled
            for settled in self.lines
            if line_decision(Check.LINE_DUE, settled.line) not in self.decided
            and line_decision(Check.LEDGER_VS_LINE, settled.line) not in self.decided
        ]

    def undecided_duplicates(self) -> list[SettledLine]:
        return [
            settled
            for settled in self.duplicates
            if decision_key(Check.DUPLICATE, settled.line.record_id) not in self.decided
        ]

    def awaiting_line(self) -> list[BookedEntry]:
        """Ledger entries with no provider line yet, not yet judged without one."""
        return [
            booked
            for booked in self.entries
            if decision_key(Check.UNSETTLED, booked.entry.entry_id) not in self.decided
            and decision_key(Check.REVERSED, booked.entry.entry_id) not in self.decided
            and self.line_for_entry(booked.entry) is None
        ]

    def wake(self) -> Wake:
        awaiting = (*self.undecided_lines(), *self.undecided_duplicates())
        due = [settled.due_at for settled in awaiting]
        waiting = [booked.covered_from for booked in self.awaiting_line()]
        key = self.watermark_key if waiting else None
        return Wake(
            tick_at=min(due, default=None),
            watermark_key=key,
            covers_needed=min(waiting) if key else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-safe form: fields at their default are left out."""
        data: dict[str, Any] = {"order_id": self.order_id}
        optional: dict[str, Any] = {
            "order": self.order and self.order.to_dict(),
            "lines": [settled.to_dict() for settled in self.lines],
            "duplicates": [settled.to_dict() for settled in self.duplicates],
            "entries": [booked.to_dict() for booked in self.entries],
            "watermarks": [w.to_dict() for w in self.watermarks],
            "decided": sorted(self.decided),
            "break_ids": sorted(self.break_ids),
        }
        data.update((key, value) for key, value in optional.items() if value)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReconState:
        order = data.get("order")
        return cls(
            order_id=data["order_id"],
            order=None if order is None else OrderSnapshot.from_dict(order),
            lines=tuple(SettledLine.from_dict(s) for s in data.get("lines", ())),
            duplicates=tuple(SettledLine.from_dict(s) for s in data.get("duplicates", ())),
            entries=tuple(BookedEntry.from_dict(b) for b in data.get("entries", ())),
            watermarks=tuple(WatermarkAdvanced.from_dict(w) for w in data.get("watermarks", ())),
            decided=frozenset(data.get("decided", ())),
            break_ids=frozenset(data.get("break_ids", ())),
        )
