"""Each drill reproduces its incident against the test broker and reaches the end state
its runbook states (deploy/drill takes the broker from KAFKA_BOOTSTRAP_SERVERS)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streams.drill import DRIFTED, FORGERIES

REPO = Path(__file__).resolve().parents[2]


def test_forged_callbacks_drill_dead_letters_and_alerts_each_and_credits_nothing(kafka_env):
    result = subprocess.run(
        [sys.executable, "-m", "streams.drill", "webhook-endpoint-failing"],
        env=kafka_env, cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"topup.dlq: {FORGERIES} dead letters, kinds ['SIGNATURE_INVALID']" in out
    assert f"topup.alerts: {FORGERIES} alerts" in out
    assert "topup.internal.payments: 0 verified payments" in out
    rejected = 'topup_webhooks_rejected_total{provider="hmac",reason="SIGNATURE_INVALID"}'
    assert f"{rejected} {FORGERIES}.0" in out
    assert "as the runbook states" in out


def test_amount_drift_drill_holds_every_short_payment_and_credits_none(kafka_env):
    result = subprocess.run(
        [sys.executable, "-m", "streams.drill", "amount-currency-mismatch"],
        env=kafka_env, cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"topup.alerts: {DRIFTED} AMOUNT_MISMATCH" in out
    assert f"{DRIFTED} of {DRIFTED} orders ON_HOLD" in out
    assert "topup.credits: 0 credits" in out
