"""Control totals of one settlement file: `step(state, input, ctx) -> (state, alerts)`.

The lines of a batch are counted and summed (each record id once) and compared with the
BATCH_CLOSED record's `line_count` and `total_amount_minor`. The close may overtake some
of its lines on the way here, so a difference is only final once event time passes the
close plus a grace; until then every late line re-checks it. The batch is judged once, at
the first input at or past that point: a difference then raises one BATCH_TOTALS_MISMATCH
alert with both sides in its details, and nothing that arrives later changes the verdict.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from streams.domain.common.ids import derived_id
from streams.domain.common.int64 import checked_add
from streams.domain.common.outputs import AlertOut, Severity
from streams.domain.common.time import MINUTE_MS, Tick
from streams.domain.recon.inputs import BatchClosed, SettlementLine, parse_settlement
from streams.domain.recon.outputs import ReconAlertKind

Range = tuple[int, int]  # inclusive


def _line_number(batch_id: str, record_id: str) -> int | None:
    """n for a record id "<batch_id>:<n>" in canonical decimal form, else None."""
    prefix = f"{batch_id}:"
    if not record_id.startswith(prefix):
        return None
    digits = record_id[len(prefix) :]
    if not (digits.isascii() and digits.isdigit()) or str(int(digits)) != digits:
        return None
    return int(digits)


def _with_number(ranges: tuple[Range, ...], number: int) -> tuple[Range, ...]:
    starts = [low for low, _ in ranges]
    at = bisect_right(starts, number)  # ranges[:at] start at or below the number
    left, right = list(ranges[:at]), list(ranges[at:])
    if left and left[-1][1] >= number:
        return ranges
    low = high = number
    if left and left[-1][1] == number - 1:
        low = left.pop()[0]
    if right and right[0][0] == number + 1:
        high = right.pop(0)[1]
    return (*left, (low, high), *right)


@dataclass(frozen=True, slots=True)
class RecordIds:
    """The record ids of one batch seen so far.

    A file's ids are "<batch_id>:<line>", so they are kept as ranges of line numbers: the
    stored state of a 100,000-line file stays a few numbers instead of growing with every
    line (it is rewritten on each one). Ids of any other form are kept as they are.
    """

    ranges: tuple[Range, ...] = ()
    others: frozenset[str] = frozenset()

    def contains(self, batch_id: str, record_id: str) -> bool:
        number = _line_number(batch_id, record_id)
        if number is None:
            return record_id in self.others
        return any(low <= number <= high for low, high in self.ranges)

    def add(self, batch_id: str, record_id: str) -> RecordIds:
        number = _line_number(batch_id, record_id)
        if number is None:
            return replace(self, others=self.others | {record_id})
        return replace(self, ranges=_with_number(self.ranges, number))


@dataclass(frozen=True, slots=True)
class BatchState:
    batch_id: str
    provider: str | None = None
    merchant_id: str | None = None
    line_count: int = 0
    total_amount_minor: int = 0
    seen: RecordIds = RecordIds()
    closed: BatchClosed | None = None  # the first BATCH_CLOSED; a repeat changes nothing
    decide_at: int | None = None
    decided: bool = False

    def differences(self) -> dict[str, str]:
        """Both sides of every control total the close states and the lines miss."""
        if self.closed is None:
            return {}
        out: dict[str, str] = {}
        for name, expected, actual in (
            ("line_count", self.closed.line_count, self.line_count),
            ("total_amount_minor", self.closed.total_amount_minor, self.total_amount_minor),
        ):
            # A close without a control total states nothing to compare.
            if expected is not None and expected != actual:
                out[f"expected_{name}"] = str(expected)
                out[f"actual_{name}"] = str(actual)
        return out

    def wake_at(self) -> int | None:
        """Event time at which a Tick must judge this batch, if it is not judged yet."""
        return None if self.decided else self.decide_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "provider": self.provider,
            "merchant_id": self.merchant_id,
            "line_count": self.line_count,
            "total_amount_minor": self.total_amount_minor,
            "seen_ranges": [list(r) for r in self.seen.ranges],
            "seen_others": sorted(self.seen.others),
            "closed": self.closed and self.closed.to_record(),
            "decide_at": self.decide_at,
            "decided": self.decided,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchState:
        closed = data.get("closed")
        parsed = None if closed is None else parse_settlement(closed)
        if parsed is not None and not isinstance(parsed, BatchClosed):
            raise ValueError("stored close is not a BATCH_CLOSED record")
        return cls(
            batch_id=data["batch_id"],
            provider=data.get("provider"),
            merchant_id=data.get("merchant_id"),
            line_count=data.get("line_count", 0),
            total_amount_minor=data.get("total_amount_minor", 0),
            seen=RecordIds(
                ranges=tuple((low, high) for low, high in data.get("seen_ranges", ())),
                others=frozenset(data.get("seen_others", ())),
            ),
            closed=parsed,
            decide_at=data.get("decide_at"),
            decided=data.get("decided", False),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchContext:
    now_ms: int  # the input's event time, never the wall clock
    correlation_id: str | None = None
    # How long after its close a batch's late lines may still arrive.
    grace_ms: int = 30 * MINUTE_MS

    def __post_init__(self) -> None:
        for name in ("now_ms", "grace_ms"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be non-negative int milliseconds")


BatchInput = SettlementLine | BatchClosed


def _count(state: BatchState, line: SettlementLine) -> BatchState:
    if state.seen.contains(state.batch_id, line.record_id):
        return state
    return replace(
        state,
        provider=state.provider or line.provider,
        merchant_id=state.merchant_id or line.merchant_id,
        line_count=state.line_count + 1,
        # Checked: an overflowing line is dead-lettered, the batch keeps its totals.
        total_amount_minor=checked_add(state.total_amount_minor, line.amount_minor),
        seen=state.seen.add(state.batch_id, line.record_id),
    )


def _close(state: BatchState, close: BatchClosed, ctx: BatchContext) -> BatchState:
    if state.closed is not None:
        return state
    # From arrival too: a file imported long after its settlement still gets its grace.
    decide_at = max(close.settled_at, ctx.now_ms) + ctx.grace_ms
    return replace(
        state,
        provider=close.provider,
        merchant_id=close.merchant_id,
        closed=close,
        decide_at=decide_at,
    )


def _judge(state: BatchState, ctx: BatchContext) -> tuple[BatchState, list[AlertOut]]:
    close = state.closed
    if close is None or state.decided or state.decide_at is None or ctx.now_ms < state.decide_at:
        return state, []
    state = replace(state, decided=True)
    differences = state.differences()
    if not differences:
        return state, []
    details = {
        "batch_id": state.batch_id,
        "close_record_id": close.record_id,
        "merchant_id": close.merchant_id,
        "covers_until": "" if close.covers_until is None else str(close.covers_until),
    } | differences
    kind = ReconAlertKind.BATCH_TOTALS_MISMATCH.value
    alert = AlertOut(
        alert_id=derived_id("al", kind, close.provider, state.batch_id),
        kind=kind,
        severity=Severity.WARN,
        order_id=None,
        provider=close.provider,
        details=details,
        raised_at=ctx.now_ms,
        correlation_id=ctx.correlation_id,
    )
    return state, [alert]


def step(
    state: BatchState | None, event: BatchInput | Tick, ctx: BatchContext
) -> tuple[BatchState, list[AlertOut]]:
    """Apply one record (or a Tick) to one batch's totals; state is keyed by batch_id.

    Raises ValueError for caller mistakes: a Tick without a state, a record routed to
    another batch's state, a Tick whose time is not the context's.
    """
    if isinstance(event, Tick):
        if state is None:
            raise ValueError("a Tick needs an existing batch state")
        if event.now_ms != ctx.now_ms:
            raise ValueError("a Tick's now_ms must be the context's now_ms")
    else:
        if state is None:
            state = BatchState(batch_id=event.batch_id)
        elif event.batch_id != state.batch_id:
            raise ValueError(f"batch {event.batch_id} routed to the state of {state.batch_id}")
        if isinstance(event, SettlementLine):
            state = _count(state, event)
        else:
            state = _close(state, event, ctx)
    return _judge(state, ctx)
