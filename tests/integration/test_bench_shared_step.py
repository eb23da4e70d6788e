"""A tiny run of issue 7's peer benchmark, so the harness cannot rot (it measures nothing
here). The first run makes .venv-quix, which takes a while."""

from __future__ import annotations

from bench.peer import run_shared_step


def test_our_step_and_the_quix_step_agree_and_both_run(kafka_env):
    # run_shared_step raises if either side's outputs differ from the reference step.
    results = run_shared_step(kafka_env["KAFKA_BOOTSTRAP_SERVERS"], records=500)
    assert results["ours_records_per_s"] > 0
    assert results["quix_records_per_s"] > 0
    assert results["ours_over_quix"] > 0
