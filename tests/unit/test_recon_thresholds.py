"""Mismatch rate per provider per hour (streams/domain/recon/thresholds.py)."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import pytest

from streams.domain.common.outputs import AlertOut, Severity
from streams.domain.common.time import Tick
from streams.domain.recon.intake_health import IntakeHealth
from streams.domain.recon.outputs import ReconCategory, ReconOutcome
from streams.domain.recon.thresholds import (
    HOUR_MS,
    RateContext,
    RateInput,
    RateState,
    RateThresholds,
    step,
)

HOUR = 1_700_002_800_000  # a whole hour
assert HOUR % HOUR_MS == 0
GRACE = 15 * 60_000
JUDGED_AT = HOUR + HOUR_MS + GRACE
PROVIDER = "stripe"
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def outcomes(matches: int, breaks: int, hour: int = HOUR) -> list[ReconOutcome]:
    spread = HOUR_MS // (matches + breaks + 1)
    categories = [None] * matches + [ReconCategory.AMOUNT_MISMATCH] * breaks
    return [
        ReconOutcome(f"ord-{i}", PROVIDER, hour + (i + 1) * spread, category)
        for i, category in enumerate(categories)
    ]


def health(
    lag_seconds: float = 0.0, failure_bp: int = 0, at: int = HOUR + 60_000, deliveries: int = 100
) -> IntakeHealth:
    """One minute's reading: `deliveries` of which `failure_bp` failed verification."""
    return IntakeHealth(PROVIDER, at, deliveries, deliveries * failure_bp // 10_000, lag_seconds)


class Rates:
    def __init__(self, thresholds: RateThresholds | None = None) -> None:
        self.thresholds = thresholds or RateThresholds()
        self.state: RateState | None = None
        self.log: list[AlertOut] = []

    def __call__(self, event: RateInput | Tick, at: int | None = None) -> list[AlertOut]:
        if at is None:
            at = event.now_ms if isinstance(event, Tick) else HOUR + 10
        stored = None if self.state is None else json.dumps(self.state.to_dict())
        state = None if stored is None else RateState.from_dict(json.loads(stored))
        ctx = RateContext(now_ms=at, thresholds=self.thresholds)
        self.state, alerts = step(state, event, ctx)
        self.log += alerts
        return alerts

    def feed(self, events: list[ReconOutcome] | list[IntakeHealth]) -> None:
        for event in events:
            self(event)

    def tick(self, at: int) -> list[AlertOut]:
        return self(Tick(at))


def test_a_rate_at_or_below_the_threshold_raises_nothing() -> None:
    rates = Rates()
    rates.feed(outcomes(99, 1))  # exactly 100 bp
    assert rates.tick(JUDGED_AT) == []


def test_a_rate_over_the_threshold_warns_once_at_the_end_of_the_hour() -> None:
    rates = Rates()
    rates.feed(outcomes(95, 5))
    assert rates.state is not None and rates.state.wake_at(rates.thresholds) == JUDGED_AT
    assert rates.tick(JUDGED_AT - 1) == []
    [alert] = rates.tick(JUDGED_AT)
    assert (alert.kind, alert.severity, alert.provider) == (
        "MISMATCH_RATE_HIGH",
        Severity.WARN,
        PROVIDER,
    )
    assert alert.details["rate_bp"] == "500"
    assert (alert.details["breaks"], alert.details["decisions"]) == ("5", "100")
    assert alert.details["page_because"] == ""
    # No storm: more ticks, and stragglers for the judged hour, change nothing.
    assert rates.tick(JUDGED_AT + HOUR_MS) == []
    rates.feed(outcomes(0, 50))
    assert rates.tick(JUDGED_AT + 2 * HOUR_MS) == []
    assert len(rates.log) == 1


@pytest.mark.parametrize(
    ("reading", "because"),
    [
        (health(lag_seconds=900), "intake_lag"),
        (health(failure_bp=800), "verification_failures"),
        (health(lag_seconds=300, failure_bp=500), "intake_lag,verification_failures"),
    ],
)
def test_it_pages_only_when_the_intake_was_in_trouble_the_same_hour(
    reading: IntakeHealth, because: str
) -> None:
    rates = Rates()
    rates.feed(outcomes(90, 10))
    rates(reading)
    [alert] = rates.tick(JUDGED_AT)
    assert alert.severity is Severity.PAGE
    assert alert.details["page_because"] == because


def test_intake_trouble_in_another_hour_does_not_page() -> None:
    rates = Rates()
    rates.feed(outcomes(90, 10))
    rates(health(lag_seconds=900, at=HOUR + HOUR_MS + 5), at=HOUR + HOUR_MS + 5)
    [alert] = rates.tick(JUDGED_AT)
    assert alert.severity is Severity.WARN


def test_a_few_failed_deliveries_in_a_quiet_minute_do_not_page() -> None:
    rates = Rates()
    rates.feed(outcomes(90, 10))
    rates(health(failure_bp=10_000, deliveries=19))  # every one failed, but only 19
    [alert] = rates.tick(JUDGED_AT)
    assert alert.severity is Severity.WARN
    assert alert.details["verification_failure_bp"] == "0"


def test_readings_of_one_minute_from_several_partitions_add_up() -> None:
    rates = Rates()
    rates.feed(outcomes(90, 10))
    # Each partition alone is under the minimum of deliveries; together they are not.
    rates(IntakeHealth(PROVIDER, HOUR + 60_000, 15, 1, 0.0))
    rates(IntakeHealth(PROVIDER, HOUR + 60_000, 15, 2, 0.0))
    # A calm minute of the same hour does not dilute the bad one.
    rates(IntakeHealth(PROVIDER, HOUR + 120_000, 1000, 0, 0.0))
    [alert] = rates.tick(JUDGED_AT)
    assert alert.severity is Severity.PAGE
    assert alert.details["verification_failure_bp"] == "1000"
    assert alert.details["page_because"] == "verification_failures"


def test_intake_trouble_alone_raises_nothing() -> None:
    rates = Rates()
    rates.feed(outcomes(100, 0))
    rates(health(lag_seconds=9000, failure_bp=9000))
    assert rates.tick(JUDGED_AT) == []


def test_too_few_decisions_make_no_rate() -> None:
    rates = Rates()
    rates.feed(outcomes(10, 5))
    assert rates.tick(JUDGED_AT) == []


def test_each_hour_is_judged_on_its_own() -> None:
    rates = Rates()
    rates.feed(outcomes(90, 10, hour=HOUR) + outcomes(100, 0, hour=HOUR + HOUR_MS))
    rates.feed(outcomes(80, 20, hour=HOUR + 2 * HOUR_MS))
    alerts = rates.tick(JUDGED_AT + 2 * HOUR_MS)
    assert [a.details["hour_start"] for a in alerts] == [str(HOUR), str(HOUR + 2 * HOUR_MS)]
    assert len({a.alert_id for a in alerts}) == 2
    assert rates.state is not None and rates.state.buckets == ()


def test_the_thresholds_are_configurable() -> None:
    rates = Rates(RateThresholds(threshold_bp=1000, min_decisions=5))
    rates.feed(outcomes(9, 1))
    assert rates.tick(JUDGED_AT) == []
    rates = Rates(RateThresholds(threshold_bp=999, min_decisions=5))
    rates.feed(outcomes(9, 1))
    assert len(rates.tick(JUDGED_AT)) == 1


def test_the_alert_matches_the_contract_schema() -> None:
    rates = Rates()
    rates.feed(outcomes(50, 50))
    rates(health(lag_seconds=1.5, failure_bp=700))
    [alert] = rates.tick(JUDGED_AT)
    parsed = fastavro.parse_schema(json.loads((SCHEMAS / "Alert.v1.avsc").read_text()))
    assert fastavro.validation.validate(alert.to_record(), parsed, raise_errors=True)


def test_outcomes_round_trip_for_the_internal_topic() -> None:
    for outcome in outcomes(1, 1):
        assert ReconOutcome.from_dict(json.loads(json.dumps(outcome.to_dict()))) == outcome
        assert outcome.key == PROVIDER


def test_caller_mistakes_raise() -> None:
    ctx = RateContext(now_ms=HOUR)
    with pytest.raises(ValueError):
        step(None, Tick(HOUR), ctx)
    state, _ = step(None, health(), ctx)
    with pytest.raises(ValueError):
        step(state, IntakeHealth("hmac", HOUR, 0, 0, 0.0), ctx)
    with pytest.raises(ValueError):
        step(state, Tick(HOUR + 1), ctx)
    with pytest.raises(ValueError):
        IntakeHealth(PROVIDER, HOUR, 1, 0, -1.0)
    with pytest.raises(ValueError):
        IntakeHealth(PROVIDER, HOUR, 1, 2, 0.0)
    with pytest.raises(ValueError):
        RateThresholds(threshold_bp=-1)
