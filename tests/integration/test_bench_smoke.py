"""A tiny benchmark run, so the harness in bench/ cannot rot (it measures nothing here).
Each other section has its own tiny run in tests/integration/test_bench_*.py."""

from __future__ import annotations

import json
from dataclasses import asdict

from bench.__main__ import SECTIONS, Sizes, markdown, run


def test_the_benchmark_harness_runs_and_writes_its_reports(kafka_env, tmp_path, monkeypatch):
    monkeypatch.delenv("TOPUP_APP_ID", raising=False)
    earlier = {"date": "2026-11-01", "commit": "abc1234", "repetitions": 3,
               "sizes": json.loads(json.dumps(asdict(Sizes()))),
               "figures": {"p50_ms": {"min": 1, "median": 2, "max": 3}}}
    (tmp_path / "results.json").write_text(json.dumps({"sections": {"latency": earlier}}))

    results = run(Sizes(orders=100), reps=1, out_dir=tmp_path,
                  bootstrap=kafka_env["KAFKA_BOOTSTRAP_SERVERS"], sections=("throughput",))
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == results
    figures = written["sections"]["throughput"]["figures"]
    for name in ("ceiling_events_per_s", "floor_events_per_s", "topology_events_per_s",
                 "domain_events_per_s"):
        assert figures[name]["median"] > 0
    assert figures["topology_over_floor"]["median"] == (
        figures["topology_events_per_s"]["median"] / figures["floor_events_per_s"]["median"])
    # More records are handled than came in: the topology's internal topics.
    assert figures["topology_records_handled_per_input_event"]["median"] > 1
    # A section not measured this time keeps its figures, marked as from then.
    assert written["sections"]["latency"] == earlier
    report = (tmp_path / "RESULTS.md").read_text()
    assert "| topology_over_ceiling |" in report
    assert "Measured 2026-11-01 at abc1234, 3 repetitions." in report


def test_every_section_is_reported_with_its_description() -> None:
    spread = {"min": 1.0, "median": 2.0, "max": 3.0}
    section = {"date": "2026-11-26", "commit": "abc1234", "repetitions": 3,
               "sizes": asdict(Sizes())}
    results = {
        "machine": {"cpus": 2, "python": "3.11"}, "versions": {},
        "sections": {name: {**section, "figures": {f"{name}_figure": spread}}
                     for name in SECTIONS},
    }
    text = markdown(results)
    for name in SECTIONS:
        assert f"## {name}" in text
        assert f"| {name}_figure | 1.000 | 2.000 | 3.000 |" in text
    assert "200000 orders" in text and "5000000 dedup ids" in text
