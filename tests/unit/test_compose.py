"""deploy/compose.yaml cannot run here (no Docker): check its structure and that every
file it mounts, and every file Grafana and Prometheus are provisioned from, exists."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_has_the_broker_two_workers_prometheus_and_grafana() -> None:
    services = _compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    workers = [s for s in services if s.startswith("worker-")]
    assert len(workers) == 2
    for name in workers:
        assert services[name]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert {"prometheus", "grafana"} <= set(services)


def test_the_operator_port_is_published_on_the_loopback_only() -> None:
    services = _compose()["services"]
    for name in (s for s in services if s.startswith("worker-")):
        operator = [p for p in services[name]["ports"] if p.endswith(":6066")]
        webhook = [p for p in services[name]["ports"] if p.endswith(":6065")]
        # The operator listener carries balances, /metrics and the console.
        assert len(operator) == 1 and operator[0].startswith("127.0.0.1:"), name
        assert len(webhook) == 1 and not webhook[0].startswith("127.0.0.1:"), name


def test_every_mounted_file_exists() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_the_workers_with_the_alert_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["worker-1:6066", "worker-2:6066"]


def test_grafana_dashboard_shows_funnel_latency_lag_and_breaks() -> None:
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "topup-guard.json").read_text())
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    for metric in ("topup_order_status_total", "topup_stage_handle_seconds_bucket",
                   "topup_intake_lag_seconds", "topup_recon_breaks_total"):
        assert metric in exprs
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "topup-guard.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
