"""How healthy a provider's webhook intake is, minute by minute of event time.

Intake tallies, per provider, the deliveries of one minute (by `received_at`), how many
failed signature verification, and the longest a delivery waited in topup.webhooks before
intake handled it. When a delivery of a later minute arrives, the finished minute becomes
one `IntakeHealth` reading for the mismatch-rate stage, which pages only when breaks
coincide with intake trouble. A minute is reported once its successor starts, so the
last minute of a quiet provider waits for its next delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.domain.common.evolve import evolve
from streams.domain.common.time import MINUTE_MS

BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class IntakeHealth:
    """One provider's intake during the minute starting at `observed_at` (event time), as
    one intake partition saw it. Readings of several partitions for one minute add up."""

    provider: str
    observed_at: int
    deliveries: int
    verification_failures: int
    intake_lag_seconds: float

    def __post_init__(self) -> None:
        if not 0 <= self.verification_failures <= self.deliveries:
            raise ValueError("verification failures must be within 0..deliveries")
        if self.intake_lag_seconds < 0:
            raise ValueError("intake lag must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "observed_at": self.observed_at,
            "deliveries": self.deliveries,
            "verification_failures": self.verification_failures,
            "intake_lag_seconds": self.intake_lag_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IntakeHealth:
        return cls(
            provider=data["provider"],
            observed_at=int(data["observed_at"]),
            deliveries=int(data["deliveries"]),
            verification_failures=int(data["verification_failures"]),
            intake_lag_seconds=float(data["intake_lag_seconds"]),
        )


def minute_of(at_ms: int) -> int:
    return at_ms - at_ms % MINUTE_MS


@dataclass(frozen=True, slots=True)
class IntakeTally:
    """The minute being counted for one provider on one intake partition."""

    provider: str
    minute: int
    deliveries: int = 0
    verification_failures: int = 0
    intake_lag_seconds: float = 0.0

    def reading(self) -> IntakeHealth:
        return IntakeHealth(self.provider, self.minute, self.deliveries,
                            self.verification_failures, self.intake_lag_seconds)

    def to_dict(self) -> dict[str, Any]:
        return self.reading().to_dict()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IntakeTally:
        reading = IntakeHealth.from_dict(data)
        return cls(reading.provider, reading.observed_at, reading.deliveries,
                   reading.verification_failures, reading.intake_lag_seconds)


def count_delivery(
    tally: IntakeTally | None,
    provider: str,
    received_at: int,
    verification_failed: bool,
    lag_seconds: float,
) -> tuple[IntakeTally, IntakeHealth | None]:
    """Count one delivery; returns the new tally and the finished minute's reading, if the
    delivery starts a later minute. A late delivery counts in the minute being tallied:
    its own minute was already reported."""
    minute = minute_of(received_at)
    finished = None
    if tally is None or minute > tally.minute:
        finished = None if tally is None else tally.reading()
        tally = IntakeTally(provider, minute)
    tally = evolve(
        tally,
        deliveries=tally.deliveries + 1,
        verification_failures=tally.verification_failures + verification_failed,
        intake_lag_seconds=max(tally.intake_lag_seconds, max(0.0, lag_seconds)),
    )
    return tally, finished
