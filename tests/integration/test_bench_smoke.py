"""A tiny benchmark run, so the harness in bench/ cannot rot (it measures nothing here).
Each other section has its own tiny run in tests/integration/test_bench_*.py."""

from __future__ import annotations

import json
from dataclasses import asdict

from bench.__main__ import SECTIONS, Sizes, markdown, run


def test_the_benchmark_harness_runs_and_writes_its_reports(kafka_env, tmp_path, monkeypatch):
    monkeypatch.delenv("TOPUP_APP_ID", raising=False)
    results = run(Sizes(orders=100), reps=1, out_dir=tmp_path,
                  bootstrap=kafka_env["KAFKA_BOOTSTRAP_SERVERS"], sections=("throughput",))
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == results
    throughput = written["throughput"]
    for name in ("ceiling_events_per_s", "floor_events_per_s", "topology_events_per_s"):
        assert throughput[name]["median"] > 0
    assert throughput["topology_over_floor"]["median"] == (
        throughput["topology_events_per_s"]["median"] / throughput["floor_events_per_s"]["median"])
    assert "| topology_over_ceiling |" in (tmp_path / "RESULTS.md").read_text()


def test_every_section_is_reported_with_its_description() -> None:
    spread = {"min": 1.0, "median": 2.0, "max": 3.0}
    results = {
        "date": "2026-11-26", "machine": {"cpus": 2, "python": "3.11"}, "versions": {},
        "repetitions": 3, "sizes": asdict(Sizes()),
        **{section: {f"{section}_figure": spread} for section in SECTIONS},
    }
    text = markdown(results)
    for section in SECTIONS:
        assert f"## {section}" in text
        assert f"| {section}_figure | 1.000 | 2.000 | 3.000 |" in text
    assert "200000 orders" in text and "5000000 dedup ids" in text
