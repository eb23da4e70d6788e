"""Intake's per-minute tally of deliveries (streams/domain/recon/intake_health.py)."""

from __future__ import annotations

import json

from streams.domain.recon.intake_health import IntakeHealth, IntakeTally, count_delivery

MINUTE = 1_795_000_020_000
assert MINUTE % 60_000 == 0


def run(deliveries: list[tuple[int, bool, float]]) -> tuple[IntakeTally, list[IntakeHealth]]:
    tally, readings = None, []
    for received_at, failed, lag in deliveries:
        stored = None if tally is None else json.loads(json.dumps(tally.to_dict()))
        tally, finished = count_delivery(
            None if stored is None else IntakeTally.from_dict(stored),
            "hmac", received_at, failed, lag,
        )
        readings += [finished] if finished else []
    assert tally is not None
    return tally, readings


def test_a_minute_is_reported_once_when_the_next_one_starts() -> None:
    tally, readings = run([
        (MINUTE + 1_000, False, 0.2),
        (MINUTE + 2_000, True, 3.0),
        (MINUTE + 59_999, True, 1.0),
        (MINUTE + 60_000, False, 0.1),
        (MINUTE + 61_000, False, 0.1),
    ])
    assert readings == [IntakeHealth("hmac", MINUTE, 3, 2, 3.0)]
    assert (tally.minute, tally.deliveries, tally.verification_failures) == (
        MINUTE + 60_000, 2, 0)


def test_a_late_delivery_counts_in_the_minute_being_tallied() -> None:
    tally, readings = run([(MINUTE + 60_000, False, 0.0), (MINUTE + 5_000, True, 0.0)])
    assert readings == []
    assert (tally.minute, tally.deliveries, tally.verification_failures) == (
        MINUTE + 60_000, 2, 1)


def test_a_skipped_minute_reports_only_the_minute_that_had_deliveries() -> None:
    _, readings = run([(MINUTE, False, 0.0), (MINUTE + 10 * 60_000, False, 0.0)])
    assert [r.observed_at for r in readings] == [MINUTE]


def test_a_clock_that_ran_ahead_of_the_broker_is_not_negative_lag() -> None:
    tally, _ = run([(MINUTE, False, -2.5)])
    assert tally.intake_lag_seconds == 0.0
