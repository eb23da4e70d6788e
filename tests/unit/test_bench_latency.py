"""How a latency run's callbacks split into its start and its steady part."""

from __future__ import annotations

import math

import pytest

from bench.latency import by_phase


def test_callbacks_of_the_first_seconds_are_the_start_and_the_rest_steady():
    # Written 0.5 s apart from t=100: four in the first 2 s, slow; four after, fast.
    acked_at = [100.0 + 0.5 * i for i in range(8)]
    latencies = [0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.1, 0.2]
    phases = by_phase(acked_at, latencies, start_s=2.0)
    assert phases["start_p50_ms"] == pytest.approx(700)
    assert phases["start_p99_ms"] == pytest.approx(900)
    assert phases["steady_p50_ms"] == pytest.approx(100)
    assert phases["steady_p99_ms"] == phases["steady_p999_ms"] == pytest.approx(200)


def test_a_run_shorter_than_its_start_has_no_steady_part():
    phases = by_phase([5.0, 5.5], [0.3, 0.4], start_s=2.0)
    assert phases["start_p99_ms"] == pytest.approx(400)
    assert math.isnan(phases["steady_p99_ms"])


def test_no_credit_gives_no_phases():
    assert by_phase([], []) == {}
