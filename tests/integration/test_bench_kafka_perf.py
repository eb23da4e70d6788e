"""A tiny run of Kafka's own perf tools, so bench/kafka_perf.py cannot rot (it measures
nothing at this size)."""

from __future__ import annotations

from bench.kafka_perf import run_kafka_perf


def test_kafka_perf_tools_run_and_report_positive_rates(kafka_bootstrap):
    rates = run_kafka_perf(kafka_bootstrap, records=2_000)
    assert set(rates) == {"producer_records_per_s", "producer_mb_per_s",
                          "consumer_records_per_s", "consumer_mb_per_s"}
    assert all(value > 0 for value in rates.values()), rates
