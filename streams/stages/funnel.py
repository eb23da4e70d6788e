"""The seed's funnel as metrics, and one INFO log line per money decision.

Counted from the outputs the stages publish, so the numbers are what the topics hold:
orders by status (created, payment confirmed, credited, on hold by reason, refunded),
ledger entries by op and reason (credits, refund debits), reconciliation breaks by
category with their value. Labels come from closed enums; ids go to the log line only.
The credit success rate is CREDITED over PAYMENT_CONFIRMED in `topup_order_status_total`.
"""

from __future__ import annotations

import logging

from streams.domain.orders.outputs import LedgerEntryOut, StatusChange
from streams.domain.orders.state import OrderStatus
from streams.domain.recon.outputs import ReconBreakOut
from streams.metrics import Metrics

log = logging.getLogger("topup.money")


def describe(metrics: Metrics) -> None:
    metrics.describe("topup_order_status_total", "Order status changes, by new status")
    metrics.describe("topup_holds_total", "Orders put on hold, by reason")
    metrics.describe("topup_ledger_entries_total", "Ledger entries written, by op and reason")
    metrics.describe("topup_ledger_minor_total", "Minor units moved by the ledger, by op")
    metrics.describe("topup_recon_breaks_total", "Reconciliation breaks, by category")
    metrics.describe("topup_recon_break_minor_total",
                     "Absolute value of reconciliation breaks in minor units, by category")


def count(metrics: Metrics, output: object) -> None:
    """Counts one published output in the funnel (others are not part of it)."""
    if isinstance(output, StatusChange):
        metrics.inc("topup_order_status_total", status=output.status.value)
        if output.status is OrderStatus.ON_HOLD:
            metrics.inc("topup_holds_total", reason=output.reason)
    elif isinstance(output, LedgerEntryOut):
        metrics.inc("topup_ledger_entries_total", op=output.op.value,
                    reason=output.reason.value)
        metrics.inc("topup_ledger_minor_total", output.amount_minor + output.bonus_minor,
                    op=output.op.value)
        log.info("money decision: %s %s order=%s entry=%s amount_minor=%d currency=%s "
                 "provider=%s correlation_id=%s", output.op.value, output.reason.value,
                 output.order_id, output.entry_id, output.amount_minor + output.bonus_minor,
                 output.currency, output.provider, output.correlation_id)
    elif isinstance(output, ReconBreakOut):
        metrics.inc("topup_recon_breaks_total", category=output.category.value)
        value = abs((output.expected_amount_minor or 0) - (output.actual_amount_minor or 0))
        metrics.inc("topup_recon_break_minor_total", value, category=output.category.value)
        log.info("money decision: RECON_BREAK %s order=%s break=%s action=%s "
                 "correlation_id=%s", output.category.value, output.order_id,
                 output.break_id, output.action.value, output.correlation_id)
