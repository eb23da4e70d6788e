"""A real Prometheus (Debian's `prometheus` binary) scrapes a real worker while forged
callbacks arrive, and its own /api/v1/alerts shows WebhookSignaturesFailing firing.

The rules are deploy/prometheus/alerts.yml with every `for:` set to 0s, so the test
checks the shipped expressions without waiting out their hold times.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import yaml

from streams.providers.testing import make_hmac_delivery
from tests.builders import payment
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import free_port, http, wait_for_http

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def _rules_without_hold(target: Path) -> None:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    target.write_text(yaml.safe_dump(rules))


def _start_prometheus(tmp: Path, target_port: int) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: apt-get install -y prometheus (see .ci/run)"
    _rules_without_hold(tmp / "alerts.yml")
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "alerts.yml")],
        "scrape_configs": [{"job_name": "topup-guard",
                            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
    }))
    port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    return process, port


def _firing(port: int) -> list[dict]:
    try:
        status, body = http("GET", f"http://127.0.0.1:{port}/api/v1/alerts")
    except OSError:
        return []  # not listening yet
    if status != 200:
        return []  # 503 while its storage starts
    return [a for a in json.loads(body)["data"]["alerts"] if a["state"] == "firing"]


def _assert_scraped(port: int) -> None:
    """The histograms, per-partition lag and process metrics reached Prometheus."""
    for query in ('topup_stage_handle_seconds_count{stage="intake"}',
                  'topup_consumer_lag_records{topic="topup.webhooks"}',
                  "process_resident_memory_bytes"):
        status, body = http("GET", f"http://127.0.0.1:{port}/api/v1/query?query="
                            + urllib.parse.quote(query))
        assert status == 200, body
        assert json.loads(body)["data"]["result"], f"no series for {query}"


def test_forged_callbacks_fire_the_signature_alert_in_prometheus(kafka_env, workers, tmp_path):
    worker = workers.start(TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS),
                           TOPUP_WEBHOOK_RATE_PER_IP="1000", TOPUP_WEBHOOK_RATE_BURST="1000")
    wait_for_http(worker)
    prometheus, port = _start_prometheus(tmp_path, worker.web_port)
    try:
        url = f"http://127.0.0.1:{worker.webhook_port}/webhooks/hmac"
        deadline = time.monotonic() + 90
        sent = 0
        while time.monotonic() < deadline:
            # Signed with a secret the worker does not hold: a forgery.
            for _ in range(5):
                forged = make_hmac_delivery(payment(f"ord-forged-{sent}", f"evt-f-{sent}"),
                                            "not-the-secret", timestamp=int(time.time()))
                status, reply = http("POST", url, forged.body,
                                     {"Content-Type": "application/json",
                                      "X-TopUp-Signature": forged.headers["x-topup-signature"]})
                assert status == 202, reply
                sent += 1
            names = {a["labels"]["alertname"]: a for a in _firing(port)}
            if "WebhookSignaturesFailing" in names:
                assert names["WebhookSignaturesFailing"]["labels"]["provider"] == "hmac"
                assert names["WebhookSignaturesFailing"]["labels"]["severity"] == "page"
                # The look-alikes stay quiet: nothing was a duplicate or a write failure.
                assert not {"DuplicateCredits", "WriteFailures"} & set(names)
                _assert_scraped(port)
                return
            time.sleep(1)
        raise AssertionError(
            f"WebhookSignaturesFailing never fired after {sent} forgeries; firing: "
            f"{_firing(port)}\n{(tmp_path / 'prometheus.log').read_text()[-3000:]}")
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
