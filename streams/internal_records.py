"""The records of the internal topics, each with the one codec that writes and reads it.

Internal topics are the project's own (JSON, not the contract's Avro), so nothing but this
module may say what their bytes look like: every writer and every reader goes through the
codec bound to the topic's `TopicSpec` (streams/topics.py). The JSON produced is the one
these topics always carried, key for key and in the same order, so records already on the
topics still decode and a replay writes what the live run wrote.

A codec's `decode` raises ValueError for bytes that are not its record (its subclass
`InvalidRecord` when the JSON parsed but had the wrong shape); each stage turns that into
its own dead letter, or skips the record where that is its policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from streams import wire
from streams.domain.common.payments import PaymentEvent
from streams.domain.recon.inputs import (
    BatchClosed,
    SettlementLine,
    WatermarkAdvanced,
    parse_line,
    parse_settlement,
)
from streams.domain.recon.intake_health import IntakeHealth
from streams.domain.recon.outputs import ReconOutcome
from streams.domain.recon.thresholds import RateInput
from streams.domain.risk.velocity import DimensionCounts, Observation

R = TypeVar("R")


class InvalidRecord(ValueError):
    """JSON that is not the topic's record: a field missing or of the wrong type."""


@dataclass(frozen=True)
class JsonCodec(Generic[R]):
    to_json: Callable[[R], Any]
    from_json: Callable[[Any], R]

    def encode(self, record: R) -> bytes:
        return wire.dumps(self.to_json(record))

    def decode(self, raw: bytes | None) -> R:
        try:
            return self.from_json(wire.loads(raw or b""))
        except (KeyError, TypeError, AttributeError) as exc:
            # The same text the stages' dead letters have always carried ("'kind'").
            raise InvalidRecord(str(exc)) from None


@dataclass(frozen=True, slots=True)
class VerifiedPayment:
    """topup.internal.payments: a verified payment event, keyed by order_id. Written by
    intake (from a callback) and by reconciliation (a settlement proof)."""

    event: PaymentEvent
    received_at: int
    # The webhook delivery it came from (a proof: the event id). Absent only on records
    # written by hand, which the readers accept.
    delivery_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.event.to_dict(), "delivery_id": self.delivery_id,
                "received_at": self.received_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VerifiedPayment:
        return cls(PaymentEvent.from_dict(dict(data)), data["received_at"],
                   data.get("delivery_id"))


@dataclass(frozen=True, slots=True)
class OrderCommand:
    """topup.internal.order-commands: a control command, its scope normalised, broadcast
    to every order partition. The command stays the ControlCommand record as decoded."""

    command: dict[str, Any]

    @property
    def issued_at(self) -> int:
        return int(self.command["issued_at"])

    def to_json(self) -> dict[str, Any]:
        return {"control": dict(self.command)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OrderCommand:
        command = data["control"]
        if not isinstance(command, dict):
            raise InvalidRecord("control is not an object")
        return cls(command)


@dataclass(frozen=True, slots=True)
class SettledInput:
    """topup.internal.recon-inputs: a settlement line keyed by order_id, or a batch's
    watermark sent to every partition, with the event time it happened at."""

    input: SettlementLine | WatermarkAdvanced
    at: int

    def to_json(self) -> dict[str, Any]:
        if isinstance(self.input, SettlementLine):
            return {"kind": "line", "at": self.at, "data": self.input.to_record()}
        return {"kind": "watermark", "at": self.at, "data": self.input.to_dict()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SettledInput:
        parse = _RECON_PARSERS[data["kind"]]
        return cls(parse(data["data"]), int(data["at"]))


_RECON_PARSERS: dict[str, Callable[[Any], SettlementLine | WatermarkAdvanced]] = {
    "line": parse_line, "watermark": WatermarkAdvanced.from_dict}


@dataclass(frozen=True, slots=True)
class SettledRecord:
    """topup.internal.settlement-batches: a settlement record keyed by batch_id."""

    record: SettlementLine | BatchClosed
    at: int

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "record": self.record.to_record()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SettledRecord:
        return cls(parse_settlement(data["record"]), int(data["at"]))


def _rate_to_json(item: RateInput) -> dict[str, Any]:
    kind = "outcome" if isinstance(item, ReconOutcome) else "intake"
    return {"kind": kind, "data": item.to_dict()}


_RATE_PARSERS: dict[str, Callable[[Any], RateInput]] = {
    "outcome": ReconOutcome.from_dict, "intake": IntakeHealth.from_dict}


def _rate_from_json(data: Mapping[str, Any]) -> RateInput:
    return _RATE_PARSERS[data["kind"]](data["data"])


# topup.internal.recon-outcomes: reconciliation's decisions and intake's minutes, by provider.
RATE_INPUT: JsonCodec[RateInput] = JsonCodec(_rate_to_json, _rate_from_json)
PAYMENT: JsonCodec[VerifiedPayment] = JsonCodec(VerifiedPayment.to_json,
                                                VerifiedPayment.from_json)
ORDER_COMMAND: JsonCodec[OrderCommand] = JsonCodec(OrderCommand.to_json, OrderCommand.from_json)
SETTLED_INPUT: JsonCodec[SettledInput] = JsonCodec(SettledInput.to_json, SettledInput.from_json)
SETTLED_RECORD: JsonCodec[SettledRecord] = JsonCodec(SettledRecord.to_json,
                                                     SettledRecord.from_json)


def _grouped(field: str, to_json: Callable[[R], Any],
             from_json: Callable[[Any], R]) -> JsonCodec[tuple[R, ...]]:
    """A codec for several records in one, under `field`; a record written before they
    were grouped (one, bare) reads as a group of one."""
    def write(items: tuple[R, ...]) -> dict[str, Any]:
        return {field: [to_json(item) for item in items]}

    def read(data: Mapping[str, Any]) -> tuple[R, ...]:
        if field not in data:
            return (from_json(data),)
        items = tuple(from_json(item) for item in data[field])
        if not items:
            raise InvalidRecord("an empty group")
        return items

    return JsonCodec(write, read)


# topup.internal.risk-observations: one order event's observations whose dimension keys
# share a partition, so a record carries up to five dimensions instead of one.
OBSERVATIONS = _grouped("observations", Observation.to_dict, Observation.from_dict)
# topup.internal.risk-answers: the counts those observations answered, for one order.
ANSWERS = _grouped("answers", DimensionCounts.to_dict, DimensionCounts.from_dict)
