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
from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.domain.common.time import Tick
from streams.domain.orders.inputs import (
    Context,
    OrderEvent,
    OrderEventType,
    RiskDecision,
    RiskVerdict,
)
from streams.domain.orders.machine import step as order_step
from streams.domain.orders.outputs import LedgerEntryOut, LedgerOp
from streams.domain.orders.state import OrderState
from streams.domain.recon.batches import BatchContext, BatchState
from streams.domain.recon.batches import step as batch_step
from streams.domain.recon.inputs import (
    BatchClosed,
    LedgerEntry,
    OrderSnapshot,
    ReconContext,
    ReconInput,
    SettlementKind,
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

SEED = 20240601
ORDERS = 3000
T0 = 1_700_006_400_000  # a whole hour
SECOND, MINUTE, HOUR = 1000, 60_000, 3_600_000
ORDER_WINDOW = 22 * HOUR
LAST_BATCH_HOUR = 30
FILE_DELAY = 10 * MINUTE  # a batch file is imported this long after its hour ends
CURRENCY = {"hmac": "USD", "stripe": "EUR", "wechatpay": "CNY"}
MERCHANTS = 2

# fault label -> the one break it must cause, as "CATEGORY/ACTION"; None: no break.
EXPECTED: dict[str, str | None] = {
    "clean": None,
    "unpaid": None,
    "clean_refund": None,
    "dropped_callback": "MISSING_CREDIT/AUTO_CORRECTED",
    "paid_while_blocked": "MISSING_CREDIT/MANUAL_REVIEW",
    "amount_drift": "AMOUNT_MISMATCH/MANUAL_REVIEW",
    "currency_drift": "CURRENCY_MISMATCH/MANUAL_REVIEW",
    "missing_line": "MISSING_AT_PROVIDER/FROZEN",
    "duplicated_line": "DUPLICATE_SETTLEMENT/MANUAL_REVIEW",
    "refund_not_settled": "REFUND_STATUS_MISMATCH/MANUAL_REVIEW",
    "refund_not_debited": "REFUND_STATUS_MISMATCH/MANUAL_REVIEW",
}
FAULTS = {
    "dropped_callback": 24,
    "paid_while_blocked": 6,
    "amount_drift": 15,
    "currency_drift": 6,
    "missing_line": 15,
    "duplicated_line": 15,
    "refund_not_settled": 8,
    "refund_not_debited": 8,
    "clean_refund": 120,
}
REFUND_LABELS = {"clean_refund", "refund_not_settled", "refund_not_debited"}


@dataclass
class Order:
    order_id: str
    provider: str
    merchant_id: str
    amount: int
    created_at: int
    label: str
    paid_at: int | None = None
    refund_at: int | None = None  # when the provider refunded


@dataclass
class ProviderLine:
    """A transaction the provider put in a settlement file."""

    txn_time: int
    order: Order
    kind: str
    amount: int
    currency: str
    batch_hour: int
    refund_id: str | None = None


# --- generating the day ----------------------------------------------------------------


def generate(rng: random.Random) -> list[Order]:
    orders = []
    for number in range(ORDERS):
        provider = rng.choice(sorted(CURRENCY))
        orders.append(
            Order(
                order_id=f"ord-{number:05d}",
                provider=provider,
                merchant_id=f"{provider}-m{rng.randrange(MERCHANTS)}",
                amount=rng.choice([500, 1000, 2000, 5000, 10_000]) + rng.randrange(100),
                created_at=T0 + rng.randrange(ORDER_WINDOW),
                label="unpaid" if rng.random() < 0.08 else "clean",
            )
        )
    paid = [order for order in orders if order.label == "clean"]
    faulty = rng.sample(paid, sum(FAULTS.values()))
    start = 0
    for label, count in FAULTS.items():
        for order in faulty[start : start + count]:
            order.label = label
        start += count
    for order in orders:
        if order.label != "unpaid":
            order.paid_at = order.created_at + rng.randrange(10 * SECOND, 10 * MINUTE)
        if order.label in REFUND_LABELS:
            assert order.paid_at is not None
            order.refund_at = order.paid_at + rng.randrange(HOUR, 3 * HOUR)
    return orders


def hour_index(at: int) -> int:
    return (at - T0) // HOUR


def provider_lines(orders: list[Order]) -> list[ProviderLine]:
    lines = []
    for order in orders:
        if order.paid_at is None or order.label == "missing_line":
            continue
        currency = CURRENCY[order.provider]
        amount = order.amount + (37 if order.label == "amount_drift" else 0)
        if order.label == "currency_drift":
            currency = "USD" if currency != "USD" else "EUR"
        hour = hour_index(order.paid_at)
        lines.append(ProviderLine(order.paid_at, order, "PAYMENT", amount, currency, hour))
        if order.label == "duplicated_line":
            # The same transaction again, in the next file.
            lines.append(ProviderLine(order.paid_at, order, "PAYMENT", amount, currency, hour + 1))
        if order.refund_at is not None and order.label != "refund_not_settled":
            lines.append(
                ProviderLine(
                    order.refund_at,
                    order,
                    "REFUND",
                    order.amount,
                    currency,
                    hour_index(order.refund_at),
                    refund_id=f"ref-{order.order_id}",
                )
            )
    return lines


def settlement_files(
    lines: list[ProviderLine], wrong_totals: tuple[str, str, int]
) -> list[tuple[int, list[dict[str, Any]]]]:
    """(import time, records) per provider, merchant and hour: lines, then BATCH_CLOSED."""
    by_batch: dict[tuple[str, str, int], list[ProviderLine]] = defaultdict(list)
    for line in sorted(lines, key=lambda line: (line.txn_time, line.order.order_id, line.kind)):
        by_batch[(line.order.provider, line.order.merchant_id, line.batch_hour)].append(line)
    files = []
    for provider in sorted(CURRENCY):
        for merchant in range(MERCHANTS):
            merchant_id = f"{provider}-m{merchant}"
            for hour in range(LAST_BATCH_HOUR + 1):
                batch_id = f"{merchant_id}-h{hour:02d}"
                hour_end = T0 + (hour + 1) * HOUR
                records = [
                    _line_record(batch_id, number, line)
                    for number, line in enumerate(by_batch[(provider, merchant_id, hour)], 1)
                ]
                count, total = len(records), sum(r["amount_minor"] for r in records)
                if (provider, merchant_id, hour) == wrong_totals:
                    count, total = count + 1, total + 999
                close = BatchClosed(
                    record_id=f"{batch_id}:close",
                    batch_id=batch_id,
                    provider=provider,
                    merchant_id=merchant_id,
                    settled_at=hour_end,
                    line_count=count,
                    total_amount_minor=total,
                    covers_until=hour_end,
                )
                files.append((hour_end + FILE_DELAY, [*records, close.to_record()]))
    return files


def _line_record(batch_id: str, number: int, line: ProviderLine) -> dict[str, Any]:
    order = line.order
    return SettlementLine(
        record_id=f"{batch_id}:{number}",
        batch_id=batch_id,
        provider=order.provider,
        merchant_id=order.merchant_id,
        kind=SettlementKind(line.kind),
        order_id=order.order_id,
        external_txn_id=f"txn-{order.order_id}",
        refund_id=line.refund_id,
        amount_minor=line.amount,
        fee_minor=line.amount // 100,
        currency=line.currency,
        settled_at=line.txn_time + 2 * MINUTE,
    ).to_record()


# --- the order stage's inputs ----------------------------------------------------------


def order_event(order: Order, type_: str, at: int, **fields: Any) -> OrderEvent:
    return OrderEvent(
        event_id=f"{type_.lower()}-{order.order_id}-{at}",
        type=OrderEventType(type_),
        order_id=order.order_id,
        occurred_at=at,
        account_id=f"acc-{order.order_id}",
        user_id=f"user-{order.order_id}",
        amount_minor=order.amount if type_ in ("CREATED", "REFUND_REQUESTED") else 0,
        currency=CURRENCY[order.provider],
        provider=order.provider,
        merchant_id=order.merchant_id,
        **fields,
    )


def callback(
    order: Order, kind: PaymentKind, at: int, refund_id: str | None = None
) -> PaymentEvent:
    return PaymentEvent(
        provider=order.provider,
        event_id=f"{kind.value.lower()}-{order.order_id}",
        external_txn_id=f"txn-{order.order_id}",
        order_id=order.order_id,
        kind=kind,
        amount_minor=order.amount,
        currency=CURRENCY[order.provider],
        merchant_id=order.merchant_id,
        app_id=None,
        occurred_at=at,
        refund_id=refund_id,
    )


def order_inputs(order: Order) -> list[tuple[int, Any]]:
    created = order.created_at
    inputs: list[tuple[int, Any]] = [(created, order_event(order, "CREATED", created))]
    if order.label == "paid_while_blocked":
        verdict = RiskVerdict(order.order_id, RiskDecision.BLOCK, 95, ("r",), created + 1, "v1")
        inputs.append((created + SECOND, verdict))
    inputs.append((created + 2 * SECOND, order_event(order, "PAYMENT_INITIATED", created)))
    if order.paid_at is None:
        inputs.append((created + 30 * MINUTE, order_event(order, "CANCELED", created)))
        return inputs
    paid = callback(order, PaymentKind.PAYMENT_SUCCEEDED, order.paid_at)
    if order.label != "dropped_callback":
        inputs.append((order.paid_at, paid))
    elif int(order.order_id[-1]) % 2:
        inputs.append((order.paid_at + 3 * HOUR, paid))  # the callback comes back, late
    if order.refund_at is not None:
        refund_id = f"ref-{order.order_id}"
        request = order_event(order, "REFUND_REQUESTED", order.refund_at, refund_id=refund_id)
        inputs.append((order.refund_at - 5 * MINUTE, request))
        if order.label != "refund_not_debited":
            done = callback(order, PaymentKind.REFUND_SUCCEEDED, order.refund_at, refund_id)
            inputs.append((order.refund_at, done))
    return inputs


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
