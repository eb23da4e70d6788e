"""A tiny benchmark run, so the harness in bench/ cannot rot (it measures nothing here)."""

from __future__ import annotations

import json

from bench.__main__ import run


def test_the_benchmark_harness_runs_and_writes_its_reports(kafka_env, tmp_path, monkeypatch):
    monkeypatch.delenv("TOPUP_APP_ID", raising=False)
    results = run(orders=100, reps=1, out_dir=tmp_path, bootstrap=kafka_env[
        "KAFKA_BOOTSTRAP_SERVERS"])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == results
    assert written["workload"]["input_events"] == 200
    assert written["topology_events_per_s"]["median"] > 0
    assert written["ceiling_events_per_s"]["median"] > 0
    assert "ours / ceiling" in (tmp_path / "RESULTS.md").read_text()
