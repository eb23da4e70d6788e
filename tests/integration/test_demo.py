"""The README's main job, run small against the test broker: its own checks must pass."""

from __future__ import annotations

from streams.demo import run_demo
from tests.kafka_harness import settings_from


def test_the_demo_reads_back_what_its_workload_implies(kafka_env, monkeypatch, tmp_path, capsys):
    for name, value in kafka_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    assert run_demo(settings_from(kafka_env), orders=20, timeout_s=180) == 0
    report = capsys.readouterr().out
    assert "result: OK" in report
    assert "ledger credits: 19 (expected 19), distinct entry ids 19" in report
    assert "reconciliation breaks: {'MISSING_CREDIT/AUTO_CORRECTED': 1}" in report
