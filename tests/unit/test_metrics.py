"""The metrics registry: Prometheus exposition, histograms, and bounded label cardinality."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import LATENCY_BUCKETS, MAX_VALUES_PER_LABEL, Metrics


def _samples(metrics: Metrics, family: str) -> list:
    for parsed in text_string_to_metric_families(metrics.render()):
        if parsed.name == family:
            return parsed.samples
    return []


def test_counters_gauges_and_histograms_render_in_the_exposition_format() -> None:
    metrics = Metrics()
    metrics.describe("topup_things_total", "Things")
    metrics.inc("topup_things_total", provider="hmac")
    metrics.inc("topup_things_total", 2, provider="hmac")
    metrics.set("topup_lag_seconds", 4.5)
    metrics.observe("topup_stage_handle_seconds", 0.02, stage="orders")
    text = metrics.render()
    assert "# HELP topup_things_total Things" in text
    assert 'topup_things_total{provider="hmac"} 3.0' in text
    assert "topup_lag_seconds 4.5" in text
    assert 'topup_stage_handle_seconds_bucket{le="0.025",stage="orders"} 1.0' in text
    assert "process_cpu_seconds_total" in text  # the standard process metrics


def test_a_thousand_bogus_providers_make_one_other_series() -> None:
    metrics = Metrics()
    metrics.bound("provider", ["hmac", "stripe"])
    metrics.inc("topup_webhooks_received_total", provider="hmac")
    for n in range(1000):
        metrics.inc("topup_webhooks_received_total", provider=f"bogus-{n}")
        metrics.inc("topup_webhook_http_total", provider=f"bogus-{n}", outcome="rejected")
    received = {s.labels["provider"]: s.value for s in
                _samples(metrics, "topup_webhooks_received") if s.name.endswith("_total")}
    assert received == {"hmac": 1.0, "other": 1000.0}
    assert len(_samples(metrics, "topup_webhook_http")) <= 2


def test_a_forgotten_series_leaves_the_exposition_and_the_others_stay() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.set("topup_lag", 7, topic="t", partition="0")
    metrics.set("topup_lag", 9, topic="t", partition="1")
    metrics.render()
    metrics.set("topup_lag", 8, topic="t", partition="0")  # pending, not yet flushed
    metrics.forget("topup_lag", topic="t", partition="0")
    metrics.forget("topup_lag", topic="t", partition="5")  # never recorded: no error
    metrics.forget("topup_never", topic="t")
    assert [(s.labels["partition"], s.value) for s in _samples(metrics, "topup_lag")] == [
        ("1", 9.0)]
    metrics.set("topup_lag", 3, topic="t", partition="0")  # owned again
    assert sorted(s.labels["partition"] for s in _samples(metrics, "topup_lag")) == ["0", "1"]


def test_an_unbounded_label_is_capped_and_the_rest_count_as_other() -> None:
    metrics = Metrics()
    for n in range(1000):
        metrics.inc("topup_dead_letters_total", kind=f"k{n}")
    series = [s for s in _samples(metrics, "topup_dead_letters") if s.name.endswith("_total")]
    assert len(series) == MAX_VALUES_PER_LABEL + 1
    assert {s.labels["kind"] for s in series} >= {"other", "k0"}


def test_identifier_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="order_id"):
        Metrics().inc("topup_credits_total", order_id="o-1")


def test_buffered_observations_render_as_prometheus_client_would_record_them() -> None:
    values = [0.0, 0.001, 0.0011, 0.02, 0.025, 0.3, 7.0, 60.0, 500.0, float("inf"), -1.0]
    metrics = Metrics(process_metrics=False)
    registry = CollectorRegistry()
    direct = Histogram("topup_stage_handle_seconds", "h", ["stage"], registry=registry,
                       buckets=LATENCY_BUCKETS)
    for value in values:
        metrics.observe("topup_stage_handle_seconds", value, stage="orders")
        direct.labels(stage="orders").observe(value)
    metrics.flush()
    # A second flush with more observations adds to the first.
    metrics.observe("topup_stage_handle_seconds", 0.004, stage="orders")
    direct.labels(stage="orders").observe(0.004)

    def samples(text: str) -> list:
        return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
                if family.name == "topup_stage_handle_seconds" for s in family.samples
                if not s.name.endswith("_created")]

    ours, theirs = samples(metrics.render()), samples(generate_latest(registry).decode())
    assert ours == theirs
    assert ('topup_stage_handle_seconds_count', {"stage": "orders"}, 12.0) in ours


def test_counts_recorded_while_another_thread_renders_are_all_rendered() -> None:
    metrics = Metrics(process_metrics=False)
    per_thread, threads = 20_000, 2
    stop = threading.Event()

    def record() -> None:
        for _ in range(per_thread):
            metrics.inc("topup_records_consumed_total", topic="topup.orders")

    def scrape() -> None:
        while not stop.is_set():
            metrics.render()

    scraper = threading.Thread(target=scrape)
    scraper.start()
    recorders = [threading.Thread(target=record) for _ in range(threads)]
    for thread in recorders:
        thread.start()
    for thread in recorders:
        thread.join()
    stop.set()
    scraper.join()
    consumed = [s.value for s in _samples(metrics, "topup_records_consumed")
                if s.name.endswith("_total")]
    assert consumed == [float(per_thread * threads)]


def test_a_negative_increment_is_refused_where_it_is_made() -> None:
    with pytest.raises(ValueError, match="only grow"):
        Metrics().inc("topup_things_total", -1)
