"""Mismatch rate per provider per event-time hour: `step(state, input, ctx) -> (state, alerts)`.

Every reconciliation decision (a `ReconOutcome`: a match or a break) counts in the tumbling
hour of its `decided_at`. Once event time passes the hour's end plus a grace, the hour is
judged once: breaks / decisions, in basis points, over the threshold (with enough decisions
for a rate to mean something) raises one MISMATCH_RATE_HIGH alert. It is WARN on its own
and PAGE only when the same provider's webhook intake was in trouble that hour too
(lag or signature-verification failures at or past their limits): breaks together with a
sick intake point at an incident, breaks alone at a provider's bookkeeping. That second
dimension is what keeps the pager quiet.

The state is keyed by provider. Counts assume each outcome arrives once, as the
reconciliation step emits each exactly once and the pipeline runs exactly-once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from streams.domain.common.ids import derived_id
from streams.domain.common.outputs import AlertOut, Severity
from streams.domain.common.time import MINUTE_MS, Tick
from streams.domain.recon.intake_health import BASIS_POINTS, IntakeHealth
from streams.domain.recon.outputs import ReconAlertKind, ReconOutcome

HOUR_MS = 60 * MINUTE_MS


@dataclass(frozen=True, slots=True, kw_only=True)
class RateThresholds:
    threshold_bp: int = 100  # alert when the hour's break rate is above 1 %
    # Below this many decisions an hour's rate is noise (1 break in 3 is 33 %).
    min_decisions: int = 20
    page_intake_lag_seconds: float = 300.0
    page_verification_failure_bp: int = 500
    # A minute's failure rate counts only over this many deliveries (1 forged in 2 is 50 %).
    min_intake_deliveries: int = 20
    # How long after an hour ends its late decisions may still arrive.
    grace_ms: int = 15 * MINUTE_MS

    def __post_init__(self) -> None:
        for name in ("threshold_bp", "min_decisions", "page_verification_failure_bp",
                     "min_intake_deliveries", "grace_ms"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative int")
        if self.page_intake_lag_seconds < 0:
            raise ValueError("page_intake_lag_seconds must be non-negative")


def hour_of(at_ms: int) -> int:
    return at_ms - at_ms % HOUR_MS


@dataclass(frozen=True, slots=True)
class HourBucket:
    hour_start: int
    breaks: int = 0
    decisions: int = 0
    # The longest wait any intake partition reported during the hour.
    intake_lag_seconds: float = 0.0
    # Intake's (minute, deliveries, verification failures), summed over partitions.
    intake_minutes: tuple[tuple[int, int, int], ...] = ()

    @property
    def rate_bp(self) -> int:
        return self.breaks * BASIS_POINTS // self.decisions if self.decisions else 0

    def verification_failure_bp(self, min_deliveries: int) -> int:
        """The worst minute's share of deliveries that failed verification: an attack
        or a broken key rotation shows in minutes, and an hour's average would hide it."""
        return max(
            (failures * BASIS_POINTS // deliveries
             for _, deliveries, failures in self.intake_minutes
             if deliveries >= max(min_deliveries, 1)),
            default=0,
        )

    def with_reading(self, reading: IntakeHealth) -> HourBucket:
        minutes = {minute: (deliveries, failures)
                   for minute, deliveries, failures in self.intake_minutes}
        deliveries, failures = minutes.get(reading.observed_at, (0, 0))
        minutes[reading.observed_at] = (deliveries + reading.deliveries,
                                        failures + reading.verification_failures)
        return replace(
            self,
            intake_lag_seconds=max(self.intake_lag_seconds, reading.intake_lag_seconds),
            intake_minutes=tuple(sorted((m, d, f) for m, (d, f) in minutes.items())),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "hour_start": self.hour_start,
            "breaks": self.breaks,
            "decisions": self.decisions,
            "intake_lag_seconds": self.intake_lag_seconds,
            "intake_minutes": [list(minute) for minute in self.intake_minutes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HourBucket:
        return cls(
            hour_start=data["hour_start"],
            breaks=data["breaks"],
            decisions=data["decisions"],
            intake_lag_seconds=data["intake_lag_seconds"],
            intake_minutes=tuple((m, d, f) for m, d, f in data.get("intake_minutes", ())),
        )


@dataclass(frozen=True, slots=True)
class RateState:
    provider: str
    buckets: tuple[HourBucket, ...] = ()  # open hours, oldest first
    judged_through: int | None = None  # start of the last hour judged; older input is late

    def wake_at(self, thresholds: RateThresholds) -> int | None:
        """Event time at which a Tick judges the oldest open hour."""
        if not self.buckets:
            return None
        return self.buckets[0].hour_start + HOUR_MS + thresholds.grace_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "buckets": [bucket.to_dict() for bucket in self.buckets],
            "judged_through": self.judged_through,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RateState:
        return cls(
            provider=data["provider"],
            buckets=tuple(HourBucket.from_dict(b) for b in data.get("buckets", ())),
            judged_through=data.get("judged_through"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RateContext:
    now_ms: int  # the input's event time, never the wall clock
    correlation_id: str | None = None
    thresholds: RateThresholds = RateThresholds()


RateInput = ReconOutcome | IntakeHealth


def _update_hour(state: RateState, event: RateInput) -> RateState:
    at = event.decided_at if isinstance(event, ReconOutcome) else event.observed_at
    hour = hour_of(at)
    if state.judged_through is not None and hour <= state.judged_through:
        return state  # the hour was judged; its verdict stands
    bucket = next((b for b in state.buckets if b.hour_start == hour), HourBucket(hour))
    if isinstance(event, ReconOutcome):
        bucket = replace(
            bucket, breaks=bucket.breaks + event.is_break, decisions=bucket.decisions + 1
        )
    else:
        bucket = bucket.with_reading(event)
    others = [b for b in state.buckets if b.hour_start != hour]
    buckets = sorted((*others, bucket), key=lambda b: b.hour_start)
    return replace(state, buckets=tuple(buckets))


def _intake_trouble(bucket: HourBucket, thresholds: RateThresholds) -> list[str]:
    trouble = []
    if bucket.intake_lag_seconds >= thresholds.page_intake_lag_seconds:
        trouble.append("intake_lag")
    failure_bp = bucket.verification_failure_bp(thresholds.min_intake_deliveries)
    if failure_bp >= thresholds.page_verification_failure_bp:
        trouble.append("verification_failures")
    return trouble


def _judge_hour(
    provider: str, bucket: HourBucket, ctx: RateContext, thresholds: RateThresholds
) -> AlertOut | None:
    if bucket.decisions < thresholds.min_decisions or bucket.rate_bp <= thresholds.threshold_bp:
        return None
    trouble = _intake_trouble(bucket, thresholds)
    kind = ReconAlertKind.MISMATCH_RATE_HIGH.value
    details = {
        "hour_start": str(bucket.hour_start),
        "hour_end": str(bucket.hour_start + HOUR_MS),
        "breaks": str(bucket.breaks),
        "decisions": str(bucket.decisions),
        "rate_bp": str(bucket.rate_bp),
        "threshold_bp": str(thresholds.threshold_bp),
        "intake_lag_seconds": str(bucket.intake_lag_seconds),
        "verification_failure_bp": str(
            bucket.verification_failure_bp(thresholds.min_intake_deliveries)
        ),
        "page_because": ",".join(trouble),
    }
    return AlertOut(
        alert_id=derived_id("al", kind, provider, bucket.hour_start),
        kind=kind,
        severity=Severity.PAGE if trouble else Severity.WARN,
        order_id=None,
        provider=provider,
        details=details,
        raised_at=ctx.now_ms,
        correlation_id=ctx.correlation_id,
    )


def step(
    state: RateState | None, event: RateInput | Tick, ctx: RateContext
) -> tuple[RateState, list[AlertOut]]:
    """Count one outcome or intake reading (or let event time pass), then judge every hour
    whose grace is over, oldest first.

    Raises ValueError for caller mistakes: a Tick without a state, an input routed to
    another provider's state, a Tick whose time is not the context's.
    """
    if isinstance(event, Tick):
        if state is None:
            raise ValueError("a Tick needs an existing rate state")
        if event.now_ms != ctx.now_ms:
            raise ValueError("a Tick's now_ms must be the context's now_ms")
    else:
        if state is None:
            state = RateState(provider=event.provider)
        elif event.provider != state.provider:
            raise ValueError(f"{event.provider} routed to the rate state of {state.provider}")
        state = _update_hour(state, event)
    thresholds = ctx.thresholds
    alerts: list[AlertOut] = []
    while (due := state.wake_at(thresholds)) is not None and ctx.now_ms >= due:
        bucket, *rest = state.buckets
        state = replace(state, buckets=tuple(rest), judged_through=bucket.hour_start)
        alert = _judge_hour(state.provider, bucket, ctx, thresholds)
        if alert is not None:
            alerts.append(alert)
    return state, alerts
