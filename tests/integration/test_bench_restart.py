"""A tiny restart and failover run, so bench/restart.py cannot rot (it measures nothing
here beyond what the figures must be to be figures at all)."""

from __future__ import annotations

from bench.restart import run_failover, run_restart


def test_restarts_on_intact_state_restore_only_the_probes_tail(kafka_env):
    results = run_restart(kafka_env["KAFKA_BOOTSTRAP_SERVERS"], orders=2_000)
    # run_restart raises unless every probe was credited after each restart.
    for how in ("sigterm", "sigkill"):
        # The seeded thousands are in the checkpoints: only the probes' few records.
        assert 0 <= results[f"{how}_restore_records"] < 200, how
        assert results[f"{how}_credit_s"] > 0, how


def test_a_failover_onto_a_standby_restores_less_than_one_without(kafka_env):
    bootstrap = kafka_env["KAFKA_BOOTSTRAP_SERVERS"]
    warm = run_failover(bootstrap, orders=2_000, standby=True)
    cold = run_failover(bootstrap, orders=2_000, standby=False)
    assert warm["standby_restore_records"] < 200
    # Without the standby the dead worker's half (about 2,000 of the 4,000 seeded
    # records) is restored in full.
    assert cold["nostandby_restore_records"] > 1_000
    assert warm["standby_detect_s"] > 0 and cold["nostandby_detect_s"] > 0
