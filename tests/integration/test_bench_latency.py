"""A tiny latency run, so bench/latency.py cannot rot (its numbers mean nothing here)."""

from __future__ import annotations

from bench.latency import run_latency


def test_every_callback_is_credited_and_the_percentiles_are_ordered(kafka_env):
    # The run recreates the topics and starts a worker with an app id of its own.
    results = run_latency(kafka_env["KAFKA_BOOTSTRAP_SERVERS"], rate_per_s=50, seconds=3.0)
    assert results["callbacks"] == 150
    assert results["credits"] == results["callbacks"]
    assert 0 < results["p50_ms"] <= results["p99_ms"] <= results["p999_ms"] <= results["max_ms"]
    # The first 2 s of the 3 s run are its start, the last second its steady part.
    assert 0 < results["start_p50_ms"] <= results["start_p99_ms"] <= results["max_ms"]
    assert 0 < results["steady_p50_ms"] <= results["steady_p99_ms"] <= results["max_ms"]
    assert results["achieved_rate_per_s"] > 40


def test_two_workers_share_the_run_and_the_loop_is_accounted(kafka_env):
    results = run_latency(kafka_env["KAFKA_BOOTSTRAP_SERVERS"], rate_per_s=50, seconds=3.0,
                          workers=2)
    assert results["workers"] == 2
    assert results["credits"] == results["callbacks"] == 150
    # Each callback is handled at least at intake and at the orders stage.
    assert results["records_per_callback"] >= 2
    assert results["batches"] >= 2
    assert 0 < results["handle_ms_per_batch"] < results["batch_cycle_ms"]
    # The commit's wait for acknowledgements is part of it, and every batch wrote state.
    assert 0 < results["flush_ms_per_batch"] < results["commit_ms_per_batch"]
    assert results["changelog_partitions_per_batch"] >= 1
    assert results["credits_per_s"] > 0
    # Both workers ran the domain, on their main threads, and the broker (local) worked.
    assert 0 < results["cpu_worker_main_threads_cores"] <= results["cpu_workers_cores"]
    assert results["cpu_broker_cores"] > 0
    assert results["cpu_workers_cores"] + results["cpu_broker_cores"] \
        <= results["cpu_busy_cores"] * 1.05 + 0.05 <= results["cpu_cores"] * 1.05 + 0.05
