"""deploy/prometheus/alerts.yml is valid and its unit tests (alerts_test.yml) pass.

promtool comes from Debian's `prometheus` package (.ci/run installs it); a missing
promtool fails this test rather than skipping it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install -y prometheus (see .ci/run)"
    return subprocess.run([promtool, *args], cwd=RULES, capture_output=True, text=True,
                          timeout=120)


def test_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_on_its_fault_and_not_on_the_look_alike() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_names_a_runbook_with_every_section() -> None:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    named = {a["annotations"]["runbook"] for a in alerts}
    runbooks = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert named <= runbooks, named - runbooks
    assert runbooks <= named, f"runbooks no alert points at: {runbooks - named}"
    for name in runbooks:
        text = (RUNBOOKS / f"{name}.md").read_text()
        for section in ("**Symptom.**", "**Alert", "**Confirm.**", "**Contain.**",
                        "**Correct.**", "**Verify fixed.**"):
            assert section in text, f"{name}.md lacks {section}"
        assert "topup-guard " in text, f"{name}.md names no operator command"
