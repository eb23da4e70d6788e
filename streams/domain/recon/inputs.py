"""What reconciliation consumes: settlement records, ledger entries, order snapshots,
watermark advances (event-time ticks are `common.time.Tick`), and the context of a call.

Every record type parses from the dict the Avro codec decodes (wire field names) and raises
ValueError on anything it cannot trust, so the intake stage can dead-letter it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.domain.common.currencies import check_currency
from streams.domain.common.int64 import MAX_AMOUNT_MINOR, check_moves_money
from streams.domain.common.record_fields import optional_text, required_text
from streams.domain.common.time import MINUTE_MS
from streams.domain.orders.state import OrderState


def _integer(record: Mapping[str, Any], name: str) -> int:
    value = record.get(name)
    if type(value) is not int:
        raise ValueError(f"{name} must be an integer")
    return value


def _amount(record: Mapping[str, Any], name: str) -> int:
    """A line's amounts: 0..MAX_AMOUNT_MINOR (direction is the kind's, never the sign), so
    a batch's totals stay far inside 64 bits."""
    value = _integer(record, name)
    if not 0 <= value <= MAX_AMOUNT_MINOR:
        raise ValueError(f"{name} must be in [0, {MAX_AMOUNT_MINOR}], got {value}")
    return value


def _optional_currency(record: Mapping[str, Any]) -> str | None:
    currency = optional_text(record, "currency")
    return None if currency is None else check_currency(currency)


def _optional_integer(record: Mapping[str, Any], name: str) -> int | None:
    return None if record.get(name) is None else _integer(record, name)


class SettlementKind(StrEnum):
    PAYMENT = "PAYMENT"
    REFUND = "REFUND"
    CHARGEBACK = "CHARGEBACK"


# What identifies one provider transaction: a second line with the same key is a duplicate.
TxnKey = tuple[SettlementKind, str | None, str | None]


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """One LINE of `topup.settlements`, known to name an order."""

    record_id: str
    batch_id: str
    provider: str
    merchant_id: str
    kind: SettlementKind
    order_id: str
    external_txn_id: str | None
    refund_id: str | None
    amount_minor: int
    fee_minor: int
    currency: str | None
    settled_at: int

    @property
    def txn_key(self) -> TxnKey:
        return (self.kind, self.external_txn_id, self.refund_id)

    def to_record(self) -> dict[str, Any]:
        """The wire record (schemas/SettlementRecord.v1.avsc); also the stored form."""
        return {
            "record_id": self.record_id,
            "type": "LINE",
            "batch_id": self.batch_id,
            "provider": self.provider,
            "merchant_id": self.merchant_id,
            "kind": self.kind.value,
            "order_id": self.order_id,
            "external_txn_id": self.external_txn_id,
            "refund_id": self.refund_id,
            "amount_minor": self.amount_minor,
            "fee_minor": self.fee_minor,
            "currency": self.currency,
            "settled_at": self.settled_at,
            "line_count": None,
            "total_amount_minor": None,
            "covers_until": None,
        }


@dataclass(frozen=True, slots=True)
class BatchClosed:
    """The BATCH_CLOSED record ending one settlement file: control totals and a watermark."""

    record_id: str
    batch_id: str
    provider: str
    merchant_id: str
    settled_at: int
    line_count: int | None
    total_amount_minor: int | None
    covers_until: int | None

    def to_record(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "type": "BATCH_CLOSED",
            "batch_id": self.batch_id,
            "provider": self.provider,
            "merchant_id": self.merchant_id,
            "kind": None,
            "order_id": None,
            "external_txn_id": None,
            "refund_id": None,
            "amount_minor": 0,
            "fee_minor": 0,
            "currency": None,
            "settled_at": self.settled_at,
            "line_count": self.line_count,
            "total_amount_minor": self.total_amount_minor,
            "covers_until": self.covers_until,
        }

    def watermark(self) -> WatermarkAdvanced | None:
        if self.covers_until is None:
            return None
        return WatermarkAdvanced(self.provider, self.merchant_id, self.covers_until)


def parse_settlement(record: Mapping[str, Any]) -> SettlementLine | BatchClosed:
    """Build from a decoded SettlementRecord; unknown fields are ignored.

    Raises ValueError for a record to dead-letter (BAD_PAYLOAD), among them a LINE without
    an order id or kind: reconciliation is keyed by order and cannot place it.
    """
    common = {name: required_text(record, name) for name in ("record_id", "batch_id", "provider")}
    common["merchant_id"] = required_text(record, "merchant_id")
    settled_at = _integer(record, "settled_at")
    if record.get("type") == "BATCH_CLOSED":
        return BatchClosed(
            **common,
            settled_at=settled_at,
            line_count=_optional_integer(record, "line_count"),
            total_amount_minor=_optional_integer(record, "total_amount_minor"),
            covers_until=_optional_integer(record, "covers_until"),
        )
    if record.get("type") != "LINE":
        raise ValueError(f"unknown settlement record type {record.get('type')!r}")
    try:
        kind = SettlementKind(record.get("kind", ""))
    except ValueError:
        raise ValueError(f"LINE with unknown kind {record.get('kind')!r}") from None
    return SettlementLine(
        **common,
        kind=kind,
        order_id=required_text(record, "order_id"),
        external_txn_id=optional_text(record, "external_txn_id"),
        refund_id=optional_text(record, "refund_id"),
        amount_minor=_amount(record, "amount_minor"),
        fee_minor=_amount(record, "fee_minor"),
        currency=_optional_currency(record),
        settled_at=settled_at,
    )


def check_line_amount(line: SettlementLine) -> None:
    """The edge's check of a LINE (not of `parse_settlement`, so lines already kept in
    reconciliation state still load): every kind is money moving, a payment, a refund or a
    chargeback, and one of 0 can prove or match nothing. Raises AmountOutOfRange."""
    check_moves_money(f"a {line.kind.value} line", "amount_minor", line.amount_minor)


def parse_line(record: Mapping[str, Any]) -> SettlementLine:
    parsed = parse_settlement(record)
    if not isinstance(parsed, SettlementLine):
        raise ValueError("expected a LINE settlement record")
    return parsed


class EntryOp(StrEnum):
    CREDIT = "CREDIT"
    DEBIT = "DEBIT"
    REVERSAL = "REVERSAL"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One `topup.credits` record, reduced to what reconciliation compares and cites."""

    entry_id: str
    op: EntryOp
    account_id: str
    order_id: str
    amount_minor: int
    currency: str
    provider: str
    external_txn_id: str | None
    refund_id: str | None
    caused_by: str
    created_at: int

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LedgerEntry:
        """Build from a decoded LedgerEntry (or a dict of the same shape, e.g. the stored
        form); unknown fields are ignored. Raises ValueError on a missing or bad field."""
        try:
            op = EntryOp(record.get("op", ""))
        except ValueError:
            raise ValueError(f"unknown ledger op {record.get('op')!r}") from None
        return cls(
            entry_id=required_text(record, "entry_id"),
            op=op,
            account_id=required_text(record, "account_id"),
            order_id=required_text(record, "order_id"),
            amount_minor=_integer(record, "amount_minor"),
            currency=required_text(record, "currency"),
            provider=required_text(record, "provider"),
            external_txn_id=optional_text(record, "external_txn_id"),
            refund_id=optional_text(record, "refund_id"),
            caused_by=required_text(record, "caused_by"),
            created_at=_integer(record, "created_at"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "op": self.op.value,
            "account_id": self.account_id,
            "order_id": self.order_id,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "provider": self.provider,
            "external_txn_id": self.external_txn_id,
            "refund_id": self.refund_id,
            "caused_by": self.caused_by,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """The order as the order stage last saw it: facts locked at CREATED plus its status.

    `version` is the order's status version; an older snapshot never replaces a newer one.
    """

    order_id: str
    version: int
    created_event_id: str | None
    account_id: str
    amount_minor: int
    currency: str
    provider: str
    merchant_id: str
    app_id: str | None
    status: str
    hold_reasons: frozenset[str]
    correlation_id: str | None

    @classmethod
    def from_order_state(cls, state: OrderState, created_event_id: str | None) -> OrderSnapshot:
        """The snapshot of an order-state row; the order stage does not keep the CREATED
        event id, so the stage that saw it passes it in (None leaves that link out)."""
        facts = state.facts
        if facts is None or state.status is None:
            raise ValueError("an order has a snapshot only once CREATED was applied")
        return cls(
            order_id=state.order_id,
            version=state.version,
            created_event_id=created_event_id,
            account_id=facts.account_id,
            amount_minor=facts.amount_minor,
            currency=facts.currency,
            provider=facts.provider,
            merchant_id=facts.merchant_id,
            app_id=facts.app_id,
            status=state.status.value,
            hold_reasons=frozenset(str(reason) for reason in state.hold_reasons),
            correlation_id=facts.correlation_id,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "version": self.version,
            "created_event_id": self.created_event_id,
            "account_id": self.account_id,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "provider": self.provider,
            "merchant_id": self.merchant_id,
            "app_id": self.app_id,
            "status": self.status,
            "hold_reasons": sorted(self.hold_reasons),
            "correlation_id": self.correlation_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrderSnapshot:
        return cls(
            order_id=required_text(data, "order_id"),
            version=_integer(data, "version"),
            created_event_id=optional_text(data, "created_event_id"),
            account_id=required_text(data, "account_id"),
            amount_minor=_integer(data, "amount_minor"),
            currency=required_text(data, "currency"),
            provider=required_text(data, "provider"),
            merchant_id=required_text(data, "merchant_id"),
            app_id=optional_text(data, "app_id"),
            status=required_text(data, "status"),
            hold_reasons=frozenset(data.get("hold_reasons", ())),
            correlation_id=optional_text(data, "correlation_id"),
        )


@dataclass(frozen=True, slots=True)
class WatermarkAdvanced:
    """Every transaction of (provider, merchant_id) up to `covers_until` is in a closed batch."""

    provider: str
    merchant_id: str
    covers_until: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "merchant_id": self.merchant_id,
            "covers_until": self.covers_until,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WatermarkAdvanced:
        return cls(
            required_text(data, "provider"),
            required_text(data, "merchant_id"),
            _integer(data, "covers_until"),
        )


ReconInput = SettlementLine | LedgerEntry | OrderSnapshot | WatermarkAdvanced


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconConfig:
    # Time the webhook path gets to credit a settled payment before reconciliation does.
    missing_credit_grace_ms: int = 30 * MINUTE_MS
    # Slack between a ledger entry and the provider's transaction time, so a watermark
    # right at the entry's time does not call a line missing that settled a moment later.
    missing_line_grace_ms: int = 30 * MINUTE_MS
    # A matched order's state is removed after this much event time without input (the
    # orders' retention, TOPUP_ORDER_RETENTION_DAYS, so both sides go together).
    retention_ms: int = 180 * 24 * 60 * MINUTE_MS

    def __post_init__(self) -> None:
        for name in ("missing_credit_grace_ms", "missing_line_grace_ms", "retention_ms"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be non-negative int milliseconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconContext:
    """`now_ms` is the input's event time (never the wall clock); `correlation_id` the
    input's header, if it had one."""

    now_ms: int
    correlation_id: str | None = None
    config: ReconConfig = ReconConfig()

    def __post_init__(self) -> None:
        if type(self.now_ms) is not int or self.now_ms < 0:
            raise ValueError("now_ms must be non-negative int milliseconds")
