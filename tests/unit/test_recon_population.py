"""A day of generated traffic with injected faults, driven through the pure stages in
event-time order the way the stages will drive them: the order machine, settlement control
totals, reconciliation, and the mismatch-rate stage.

Every injected fault must show up as exactly one break of its category (or, for the batch
with wrong totals, exactly one BATCH_TOTALS_MISMATCH alert) and clean orders as none.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from streams.domain.common.ids import entry_id
from streams.domain.common.outputs import AlertOut, AuditOut
from streams.domain.common.time import Tick
from streams.domain.orders.inputs import Context
from streams.domain.orders.machine import step as order_step
from streams.domain.orders.outputs import LedgerEntryOut, LedgerOp
from streams.domain.orders.state import OrderState
from streams.domain.recon.batches import BatchContext, BatchState
from streams.domain.recon.batches import step as batch_step
from streams.domain.recon.inputs import (
    LedgerEntry,
    OrderSnapshot,
    ReconContext,
    ReconInput,
    SettlementLine,
    WatermarkAdvanced,
    parse_settlement,
)
from streams.domain.recon.machine import step as recon_step
from streams.domain.recon.outputs import (
    ControlCommandOut,
    ReconAuditAction,
    ReconBreakOut,
    ReconOutcome,
    SettlementProof,
)
from streams.domain.recon.report import build_report
from streams.domain.recon.state import ReconState
from streams.domain.recon.thresholds import RateContext, RateState
from streams.domain.recon.thresholds import step as rate_step
from tests.recon_population import (
    EXPECTED,
    FAULTS,
    HOUR,
    LAST_BATCH_HOUR,
    REFUND_LABELS,
    SEED,
    T0,
    Order,
    generate,
    order_inputs,
    provider_lines,
    settlement_files,
)

# --- the stages, reduced to their routing ---------------------------------------------


@dataclass
class Pipeline:
    """Routes records between the pure stages the way the stages will, in event time."""

    queue: list[tuple[int, int, str, Any]] = field(default_factory=list)
    sequence: Any = field(default_factory=itertools.count)
    order_states: dict[str, OrderState] = field(default_factory=dict)
    snapshot_versions: dict[str, int] = field(default_factory=dict)
    recon_table: dict[str, str] = field(default_factory=dict)  # stored JSON, as in RocksDB
    batch_states: dict[str, BatchState] = field(default_factory=dict)
    rate_states: dict[str, RateState] = field(default_factory=dict)
    watermarks: dict[tuple[str, str], int] = field(default_factory=dict)  # the global table
    waiting_for_watermark: dict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    ticks: set[tuple[str, str, int]] = field(default_factory=set)
    ledger: list[LedgerEntryOut] = field(default_factory=list)
    breaks: list[ReconBreakOut] = field(default_factory=list)
    alerts: list[AlertOut] = field(default_factory=list)
    audits: list[AuditOut] = field(default_factory=list)
    commands: list[ControlCommandOut] = field(default_factory=list)
    outcomes: list[ReconOutcome] = field(default_factory=list)

    def at(self, when: int, kind: str, payload: Any) -> None:
        heapq.heappush(self.queue, (when, next(self.sequence), kind, payload))

    def run(self) -> None:
        handlers: dict[str, Callable[[int, Any], None]] = {
            "order": self.to_orders,
            "file": self.import_file,
            "recon": lambda now, routed: self.to_recon(routed[0], routed[1], now),
            "batch_tick": lambda now, batch_id: self.to_batches(batch_id, Tick(now), now),
        }
        while self.queue:
            now, _, kind, payload = heapq.heappop(self.queue)
            handlers[kind](now, payload)

    # order stage
    def to_orders(self, now: int, event: Any) -> None:
        ctx = Context(now_ms=now, credits_frozen=False, refunds_frozen=False)
        state, outputs = order_step(self.order_states.get(event.order_id), event, ctx)
        self.order_states[state.order_id] = state
        for output in outputs:
            if isinstance(output, LedgerEntryOut):
                self.ledger.append(output)
                # topup.credits is keyed by account; the stage re-keys by order id.
                entry = LedgerEntry.from_record(output.to_record())
                self.at(now, "recon", (output.order_id, entry))
        if state.facts is not None and self.snapshot_versions.get(state.order_id) != state.version:
            self.snapshot_versions[state.order_id] = state.version
            snapshot = OrderSnapshot.from_order_state(state, f"created-{state.order_id}")
            self.at(now, "recon", (state.order_id, snapshot))

    # settlement intake: re-key lines by order, totals by batch, the watermark globally
    def import_file(self, now: int, records: list[dict[str, Any]]) -> None:
        for record in records:
            parsed = parse_settlement(json.loads(json.dumps(record)))
            self.to_batches(parsed.batch_id, parsed, now)
            if isinstance(parsed, SettlementLine):
                self.to_recon(parsed.order_id, parsed, now)
            elif (mark := parsed.watermark()) is not None:
                self.advance(mark, now)

    def advance(self, mark: WatermarkAdvanced, now: int) -> None:
        key = (mark.provider, mark.merchant_id)
        self.watermarks[key] = max(self.watermarks.get(key, 0), mark.covers_until)
        for order_id in sorted(self.waiting_for_watermark[key]):
            self.to_recon(order_id, mark, now)

    def to_batches(self, batch_id: str, event: Any, now: int) -> None:
        state, alerts = batch_step(self.batch_states.get(batch_id), event, BatchContext(now_ms=now))
        self.batch_states[batch_id] = state
        self.alerts += alerts
        wake = state.wake_at()
        if wake is not None and ("batch", batch_id, wake) not in self.ticks:
            self.ticks.add(("batch", batch_id, wake))
            self.at(wake, "batch_tick", batch_id)

    # reconciliation stage
    def to_recon(self, order_id: str, event: ReconInput | None, now: int) -> None:
        """Run one input (None: a Tick at `now`) against the order's stored row."""
        stored = self.recon_table.get(order_id)
        state = None if stored is None else ReconState.from_dict(json.loads(stored))
        state, outputs = recon_step(state, event or Tick(now), ReconContext(now_ms=now))
        self.recon_table[order_id] = json.dumps(state.to_dict())
        for output in outputs:
            if isinstance(output, SettlementProof):
                self.at(now, "order", output.event)  # to the order stage's payment input
            elif isinstance(output, ReconOutcome):
                self.outcomes.append(output)
                self.to_rates(output.provider, output, now)
            else:
                {
                    ReconBreakOut: self.breaks,
                    AlertOut: self.alerts,
                    AuditOut: self.audits,
                    ControlCommandOut: self.commands,
                }[type(output)].append(output)
        self.schedule_wake(state, now)

    def schedule_wake(self, state: ReconState, now: int) -> None:
        wake = state.wake()
        if wake.tick_at is not None and ("recon", state.order_id, wake.tick_at) not in self.ticks:
            self.ticks.add(("recon", state.order_id, wake.tick_at))
            self.at(wake.tick_at, "recon", (state.order_id, None))
        for key, waiting in self.waiting_for_watermark.items():
            if key != wake.watermark_key:
                waiting.discard(state.order_id)
        if wake.watermark_key is None:
            return
        key = wake.watermark_key
        if state.order_id not in self.waiting_for_watermark[key]:
            self.waiting_for_watermark[key].add(state.order_id)
            # The stage hands a newly waiting order the watermark as it stands.
            if key in self.watermarks:
                current = WatermarkAdvanced(key[0], key[1], self.watermarks[key])
                self.at(now, "recon", (state.order_id, current))

    # mismatch-rate stage, keyed by provider
    def to_rates(self, provider: str, event: ReconOutcome | Tick, now: int) -> None:
        state, alerts = rate_step(self.rate_states.get(provider), event, RateContext(now_ms=now))
        self.rate_states[provider] = state
        self.alerts += alerts


# --- the day ---------------------------------------------------------------------------


Day = tuple[list[Order], Pipeline, tuple[str, str, int]]


def simulate() -> Day:
    rng = random.Random(SEED)
    orders = generate(rng)
    lines = provider_lines(orders)
    busy = Counter((line.order.provider, line.order.merchant_id, line.batch_hour) for line in lines)
    wrong_totals = sorted(key for key, count in busy.items() if key[2] == 5 and count > 3)[0]
    pipeline = Pipeline()
    for order in orders:
        for when, event in order_inputs(order):
            pipeline.at(when, "order", event)
    for when, records in settlement_files(lines, wrong_totals):
        pipeline.at(when, "file", records)
    pipeline.run()
    end = T0 + (LAST_BATCH_HOUR + 3) * HOUR
    for provider in sorted(pipeline.rate_states):
        pipeline.to_rates(provider, Tick(end), end)
    return orders, pipeline, wrong_totals


def confusion_table(matrix: Counter[tuple[str, str]]) -> str:
    """Injected fault (rows, with the break it should cause) against breaks found."""
    columns = sorted({observed for _, observed in matrix})
    labels = [f"{label} -> {EXPECTED[label] or 'none'}" for label in EXPECTED]
    width = max(map(len, labels))
    header = "injected -> expected".ljust(width) + " | " + " | ".join(columns)
    rows = [header, "-" * len(header)]
    for label, title in zip(EXPECTED, labels, strict=True):
        cells = [str(matrix.get((label, column), "")).rjust(len(column)) for column in columns]
        rows.append(title.ljust(width) + " | " + " | ".join(cells))
    return "\n".join(rows)


@pytest.fixture(scope="module")
def day() -> Day:
    return simulate()


def test_a_day_of_traffic_finds_every_injected_fault_once_and_nothing_else(day: Day) -> None:
    orders, pipeline, wrong_totals = day

    found: dict[str, list[str]] = defaultdict(list)
    for found_break in pipeline.breaks:
        found[found_break.order_id].append(f"{found_break.category}/{found_break.action}")
    matrix: Counter[tuple[str, str]] = Counter()
    wrong = []
    for order in orders:
        observed = "+".join(sorted(found[order.order_id])) or "none"
        matrix[(order.label, observed)] += 1
        if observed != (EXPECTED[order.label] or "none"):
            wrong.append((order.order_id, order.label, observed))
    table = confusion_table(matrix)
    assert not wrong, f"{len(wrong)} orders misjudged, e.g. {wrong[:5]}\n{table}"
    assert sum(FAULTS.values()) - FAULTS["clean_refund"] == len(pipeline.breaks), table

    # The batch with wrong totals raises one alert, and no other batch does.
    batch_alerts = [a for a in pipeline.alerts if a.kind == "BATCH_TOTALS_MISMATCH"]
    batch_id = f"{wrong_totals[1]}-h{wrong_totals[2]:02d}"
    assert [a.details["batch_id"] for a in batch_alerts] == [batch_id], table
    assert batch_alerts[0].details["actual_line_count"] == str(
        int(batch_alerts[0].details["expected_line_count"]) - 1
    )


def test_a_day_of_traffic_credits_each_payment_once_on_one_path(day: Day) -> None:
    orders, pipeline, _ = day
    entry_ids = [entry.entry_id for entry in pipeline.ledger]
    assert len(entry_ids) == len(set(entry_ids))
    credits = Counter(e.order_id for e in pipeline.ledger if e.op is LedgerOp.CREDIT)
    for order in orders:
        expected = 0 if order.label in ("unpaid", "paid_while_blocked") else 1
        assert credits[order.order_id] == expected, order
    # A dropped callback is credited by the settlement's proof with the callback's entry
    # id; the callback that came back later credited nothing more.
    proved = {e.order_id: e for e in pipeline.ledger if e.caused_by.startswith("settlement:")}
    dropped = {o.order_id for o in orders if o.label == "dropped_callback"}
    assert set(proved) == dropped
    for order_id, entry in proved.items():
        assert entry.entry_id == entry_id(order_id, "CREDIT", f"txn-{order_id}", None)


def test_a_day_of_traffic_audits_one_match_per_agreeing_transaction(day: Day) -> None:
    orders, pipeline, _ = day
    matched = Counter(a.subject for a in pipeline.audits if a.action == ReconAuditAction.MATCHED)
    for order in orders:
        payment_matches = order.label in ("clean", "dropped_callback", "duplicated_line")
        payment_matches |= order.label in REFUND_LABELS
        refund_matches = order.label == "clean_refund"
        assert matched[order.order_id] == payment_matches + refund_matches, order
    for audit in pipeline.audits:
        assert audit.inputs["chain.order_event_id"] == f"created-{audit.subject}"
    frozen = {c.scope for c in pipeline.commands}
    missing = {f"account:acc-{o.order_id}" for o in orders if o.label == "missing_line"}
    assert frozen == missing


def test_a_day_of_traffic_feeds_the_rate_and_the_report(day: Day) -> None:
    orders, pipeline, _ = day
    rate_alerts = [a for a in pipeline.alerts if a.kind == "MISMATCH_RATE_HIGH"]
    hours = Counter((a.provider, a.details["hour_start"]) for a in rate_alerts)
    assert all(count == 1 for count in hours.values()), hours
    assert sum(o.is_break for o in pipeline.outcomes) == len(pipeline.breaks)
    matched_orders = len(
        {a.subject for a in pipeline.audits if a.action == ReconAuditAction.MATCHED}
    )
    report = build_report([b.to_record() for b in pipeline.breaks], matched_orders)
    expected = Counter(
        EXPECTED[o.label].split("/")[0] for o in orders if EXPECTED[o.label] is not None
    )
    assert report.by_category == dict(sorted(expected.items()))
    assert report.match_rate_bp is not None and report.match_rate_bp > 9500
