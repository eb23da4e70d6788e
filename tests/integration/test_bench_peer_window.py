"""A tiny run of issue 19's windowed peer benchmark, so the harness cannot rot (it measures
nothing here). The first run makes .venv-quix, which takes a while."""

from __future__ import annotations

from bench.peer_window import expected_tuples, run_window_step
from bench.window_step import DIMENSIONS, WINDOWS_MS, attempts


def test_the_reference_counts_each_attempt_once_per_dimension_and_window():
    expected = expected_tuples(300, seed=3)
    assert expected.total() == 300 * len(DIMENSIONS) * len(WINDOWS_MS)
    # The counts of one window run 1..n, each once.
    counts: dict[tuple[str, str, int, int], list[int]] = {}
    for (dimension, value, size, start, count), times in expected.items():
        assert times == 1
        counts.setdefault((dimension, value, size, start), []).append(count)
    for seen in counts.values():
        assert sorted(seen) == list(range(1, len(seen) + 1))
    # Every merchant window of an hour together holds every attempt once.
    hours = sum(len(seen) for (dimension, _, size, _), seen in counts.items()
                if dimension == "merchant" and size == 3_600_000)
    assert hours == len(attempts(300, seed=3))


def test_our_windows_and_the_quix_windows_agree_and_both_run(kafka_env):
    # run_window_step raises if either side's outputs differ from the reference.
    results = run_window_step(kafka_env["KAFKA_BOOTSTRAP_SERVERS"], records=500)
    assert results["window_ours_records_per_s"] > 0
    assert results["window_quix_records_per_s"] > 0
    assert results["window_ours_over_quix"] > 0
