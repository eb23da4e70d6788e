"""The funnel counts published outputs with bounded labels; money decisions log one INFO
line with the correlation id; TOPUP_LOG_FORMAT=json makes log lines JSON."""

from __future__ import annotations

import json
import logging

import pytest

from streams.config import ConfigError
from streams.domain.orders.outputs import LedgerEntryOut, LedgerOp, LedgerReason, StatusChange
from streams.domain.orders.state import OrderStatus
from streams.logs import JsonFormatter, configure
from streams.metrics import Metrics
from streams.stages import funnel


def _credit(n: int) -> LedgerEntryOut:
    return LedgerEntryOut(f"e-{n}", LedgerOp.CREDIT, f"acct-{n}", f"ord-{n}", 500, 0, "USD",
                          "hmac", f"tx-{n}", None, LedgerReason.PAYMENT_CONFIRMED, "evt", 1,
                          correlation_id=f"corr-{n}")


def test_funnel_counts_by_status_and_op_without_ids(caplog) -> None:
    metrics = Metrics(process_metrics=False)
    funnel.describe(metrics)
    with caplog.at_level(logging.INFO, logger="topup.money"):
        for n in range(500):
            funnel.count(metrics, StatusChange(f"ord-{n}", OrderStatus.CREDITED,
                                               OrderStatus.PAYMENT_CONFIRMED, "paid", 2, 1))
            funnel.count(metrics, _credit(n))
    text = metrics.render()
    assert 'topup_order_status_total{status="CREDITED"} 500.0' in text
    assert 'topup_ledger_minor_total{op="CREDIT"} 250000.0' in text
    assert "ord-1" not in text and "acct-1" not in text
    lines = [r.getMessage() for r in caplog.records if r.name == "topup.money"]
    assert len(lines) == 500
    assert "order=ord-7 " in lines[7] and "correlation_id=corr-7" in lines[7]


def test_json_log_format_and_a_bad_format_is_a_config_error() -> None:
    record = logging.LogRecord("topup.money", logging.INFO, __file__, 1, "credited %s",
                               ("ord-1",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "credited ord-1" and entry["level"] == "INFO"
    with pytest.raises(ConfigError, match="TOPUP_LOG_FORMAT"):
        configure({"TOPUP_LOG_FORMAT": "xml"})
