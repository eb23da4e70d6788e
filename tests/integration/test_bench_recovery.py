"""A tiny recovery run, so bench/recovery.py cannot rot (it measures nothing here)."""

from __future__ import annotations

from bench.recovery import run_recovery


def test_a_worker_restored_from_seeded_changelogs_credits_the_probe(kafka_env):
    results = run_recovery(kafka_env["KAFKA_BOOTSTRAP_SERVERS"], orders=2_000, dedup_ids=10_000)
    # run_recovery raises unless the probe's credit reached topup.credits.
    assert results["seeded_records"] == 12_000
    assert 0 < results["restore_s"] <= results["first_credit_s"]
    for figure in ("rss_mib", "peak_rss_mib", "state_dir_mib", "restore_in_worker_s"):
        assert results[figure] > 0, figure
    assert results["peak_rss_mib"] >= results["rss_mib"]
    # Restarts on intact local state restore only the changelogs' tail: a handful of
    # records (the probes'), not the seeded thousands.
    for how in ("sigterm", "sigkill"):
        assert 0 <= results[f"restart_{how}_restore_records"] < 100, how
        assert results[f"restart_{how}_credit_s"] > 0, how
