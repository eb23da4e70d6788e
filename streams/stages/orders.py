"""The order stage: orders, verified payments and control broadcasts, joined by order_id.

All three inputs are keyed by order_id (control commands are broadcast to every
partition), so one partition holds everything an order's decision needs. The stage loads
the order's state, calls the pure state machine, stores the new state and publishes what
it returned. Per partition it also keeps a book: the active freezes and the orders
waiting for a freeze to lift; the runtime keeps the partition's event-time timers there
too (which wake orders holding a payment that may become an orphan).

Orders are bounded: an order that has ended (FAILED, CANCELED, REFUNDED, REVERSED, or
CREDITED with nothing held or in flight) and sees no input for `TOPUP_ORDER_RETENTION_DAYS` of the
partition's event time is removed, with a tombstone on the changelog. An input dated
before that horizon could be for a removed order, whose state (and ledger guard) is gone,
so it is refused to the DLQ instead of deciding anything; a late payment callback, which
intake dates at its arrival, finds no order and is held as an orphan (alerted, never
credited), as for any payment whose order never came.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from typing import Any

from streams import topics
from streams.codecs import DecodeError, SchemaCatalog
from streams.config import Settings
from streams.domain.common.configured_providers import ProviderNotConfigured, configured_providers
from streams.domain.common.event_time import EventTimeBounds, EventTimeOutOfRange
from streams.domain.common.freeze import (
    ActiveFreezes,
    apply_command,
    credits_frozen,
    refunds_frozen,
)
from streams.domain.common.int64 import AmountOutOfRange
from streams.domain.common.time import Tick
from streams.domain.orders.inputs import Context as StepContext
from streams.domain.orders.inputs import (
    FreezeChanged,
    OrderEvent,
    OrderInput,
    RiskVerdict,
    check_order_amounts,
    check_order_provider,
)
from streams.domain.orders.machine import step
from streams.domain.orders.outputs import LedgerEntryOut
from streams.domain.orders.state import HoldReason, OrderState, OrderStatus
from streams.domain.recon.inputs import LedgerEntry, OrderSnapshot, ReconConfig
from streams.runtime.context import Context, Record, Table
from streams.runtime.repartition import key_or_field
from streams.runtime.stage import KeyOf, Stage
from streams.runtime.store import StoreSpec
from streams.runtime.timers import Timers, TimerSpec, to_the_hour, with_timers
from streams.stages.outputs import publish_outputs
from streams.stages.reconciliation import (
    RECON_BOOKS,
    RECON_OUTPUTS,
    RECON_STATE,
    Timed,
    recon_config,
    reconcile,
)
from streams.stages.state_family import STATE

ORDER_STATE = StoreSpec("order-state", family=STATE)
BOOKS = StoreSpec("order-partitions", family=STATE)
FREEZE_HOLDS = {HoldReason.CREDIT_FREEZE, HoldReason.REFUND_FREEZE}
ENDED = {OrderStatus.FAILED, OrderStatus.CANCELED, OrderStatus.REFUNDED, OrderStatus.REVERSED}
DAY_MS = 24 * 60 * 60 * 1000
# The timer's key for an order's removal; domain keys never start with '~'.
RETIRE = "~retire|"

log = logging.getLogger(__name__)


def retirable(state: OrderState) -> bool:
    """Ended for good: no input can still move money for it except a refund of a credited
    order, which its retention (longer than any refund or chargeback window) outlasts."""
    if state.held_payments or state.hold_reasons or state.refund_in_flight is not None:
        return False
    return state.status in ENDED or (state.status is OrderStatus.CREDITED and state.credited)


class PartitionBook:
    """One partition's active freezes, and the orders a freeze holds, as index keys
    (`~held|<order_id>`) read when a freeze changes; orphan deadlines wake their orders
    through the stage's timers."""

    def __init__(self, table: Table, partition: int, timers: Timers) -> None:
        self._table, self._freezes_key = table, f"~freezes-p{partition}"
        self.timers = timers
        self.freezes: ActiveFreezes = table.get(self._freezes_key) or {}

    def track(self, state: OrderState, orphan_hold_ms: int) -> None:
        self.timers.schedule(state.order_id, state.wake_at(orphan_hold_ms))
        held, table = f"~held|{state.order_id}", self._table
        if FREEZE_HOLDS & state.hold_reasons:
            if table.get(held) is None:
                table[held] = 1
        elif table.get(held) is not None:
            del table[held]

    def freeze_held(self) -> list[str]:
        return [key.removeprefix("~held|") for key, _ in self._table.scan_prefix("~held|")]

    def save(self, freezes_changed: bool) -> None:
        if freezes_changed:
            self._table[self._freezes_key] = self.freezes


@dataclass(frozen=True)
class Decoded:
    input: OrderInput | dict[str, Any]  # a control command is a dict
    event_time: int


def _decoder(catalog: SchemaCatalog, time_bounds: EventTimeBounds,
             max_amount_minor: int, providers: Collection[str]) -> Callable[[Record], Decoded]:
    def decode(record: Record) -> Decoded:
        topic, value = record.topic, record.value
        try:
            if value is None:
                raise ValueError("no value")
            if topic == topics.ORDERS:
                order = OrderEvent.from_record(catalog.decode("OrderEvent", value))
                try:
                    time_bounds.check("occurred_at", order.occurred_at, record.timestamp_ms)
                    check_order_amounts(order, max_amount_minor)
                except (EventTimeOutOfRange, AmountOutOfRange) as exc:
                    raise DecodeError("SCHEMA_INVALID", f"{topic} record refused: {exc}") from None
                try:
                    check_order_provider(order, providers)
                except ProviderNotConfigured as exc:
                    raise DecodeError("UNKNOWN_PROVIDER",
                                      f"{topic} record refused: {exc}") from None
                return Decoded(order, order.occurred_at)
            if topic == topics.RISK_DECISIONS:
                verdict = RiskVerdict.from_record(catalog.decode("RiskDecision", value))
                return Decoded(verdict, verdict.decided_at)
            if topic == topics.PAYMENTS:
                verified = topics.PAYMENTS_TOPIC.decode(value)
                return Decoded(verified.event, verified.received_at)
            command = topics.ORDER_COMMANDS_TOPIC.decode(value).command
            return Decoded(command, command["issued_at"])
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, DecodeError):
                raise
            raise DecodeError("BAD_PAYLOAD", f"{topic} record refused: {exc}") from None

    return decode


def _to_reconciliation(
    ctx: Context,
    before: OrderState | None,
    after: OrderState,
    outputs: list[Any],
    now: int,
    config: ReconConfig,
) -> None:
    """What the ledger did, for reconciliation: each entry, and the order as it now is."""
    inputs = [Timed(LedgerEntry.from_record(output.to_record()), now)
              for output in outputs if isinstance(output, LedgerEntryOut)]
    changed = before is None or before.version != after.version
    if changed and after.facts is not None and after.status is not None:
        # The CREATED event id is not kept in the order's state, so the chain starts at it.
        inputs.append(Timed(OrderSnapshot.from_order_state(after, None), now))
    if inputs:
        ctx.run_isolated(partial(_reconcile_all, config=config), inputs, "reconciliation")


def _reconcile_all(ctx: Context, inputs: list[Timed], config: ReconConfig) -> None:
    for timed in inputs:
        reconcile(ctx, timed, config)


# The order machine's outputs, then reconciliation's, run in-process on what it hands over.
ORDER_OUTPUTS = tuple(dict.fromkeys((
    topics.ORDER_STATUS, topics.CREDITS, topics.ALERTS, topics.AUDIT, topics.REVIEW_CASES,
    *RECON_OUTPUTS)))


def stage(settings: Settings, catalog: SchemaCatalog) -> Stage:
    orphan_hold_ms = settings.orphan_hold_s * 1000
    reconciling = recon_config(settings.recon_missing_credit_grace_s,
                               settings.order_retention_days)
    retention_ms = settings.order_retention_days * DAY_MS

    def advance(
        ctx: Context,
        orders: Table,
        book: PartitionBook,
        order_id: str,
        item: OrderInput | Tick,
        now: int,
        correlation: str | None,
    ) -> None:
        state = orders.load(order_id, OrderState)
        facts = state.facts if state is not None and state.facts is not None else item
        provider = getattr(facts, "provider", None)
        merchant = getattr(facts, "merchant_id", None)
        account = getattr(facts, "account_id", None)
        step_ctx = StepContext(
            now_ms=now,
            credits_frozen=credits_frozen(book.freezes, provider, merchant, account),
            refunds_frozen=refunds_frozen(book.freezes, provider, merchant, account),
            orphan_hold_ms=orphan_hold_ms,
            correlation_id=correlation,
            require_risk_verdict=settings.require_risk_verdict,
        )
        new_state, outputs = step(state, item, step_ctx)
        orders[order_id] = new_state
        book.track(new_state, orphan_hold_ms)
        # Counted from the partition's event time: any input touching the order moves it on.
        book.timers.schedule(RETIRE + order_id, to_the_hour(book.timers.now + retention_ms)
                             if retirable(new_state) else None)
        publish_outputs(ctx, outputs)
        _to_reconciliation(ctx, state, new_state, outputs, now, reconciling)

    def handle(ctx: Context, decoded: Decoded) -> None:
        # The runtime has moved event time to this input's (`_event_time`) already.
        orders = ctx.table(ORDER_STATE.name)
        book = PartitionBook(ctx.table(BOOKS.name), ctx.record.partition, ctx.timers)
        watermark = ctx.timers.now
        correlation = ctx.record.correlation_id
        item = decoded.input
        if not isinstance(item, dict) and decoded.event_time <= watermark - retention_ms:
            ctx.dead_letter("BAD_PAYLOAD", (
                f"event time {decoded.event_time} is before the order retention horizon "
                f"{watermark - retention_ms} (TOPUP_ORDER_RETENTION_DAYS): the order "
                f"may have been removed, so nothing is decided for it"))
            return
        # An input is judged at its own event time; what only the passing of time decides
        # (orphans, broadcasts) at the partition's watermark, which never goes back.
        command = isinstance(item, dict)
        if command:
            book.freezes = apply_command(book.freezes, item)
            change = FreezeChanged(item["command_id"])
            for order_id in book.freeze_held():
                advance(ctx, orders, book, order_id, change, watermark, correlation)
        else:
            advance(ctx, orders, book, item.order_id, item, decoded.event_time, correlation)
        book.save(freezes_changed=command)

    def on_due(ctx: Context, key: str) -> None:
        orders = ctx.table(ORDER_STATE.name)
        if key.startswith(RETIRE):
            retire(orders, key.removeprefix(RETIRE))
            return
        book = PartitionBook(ctx.table(BOOKS.name), ctx.record.partition, ctx.timers)
        now = ctx.timers.now
        advance(ctx, orders, book, key, Tick(now), now, None)

    def retire(orders: Table, order_id: str) -> None:
        state = orders.load(order_id, OrderState)
        # Any input since the wake was set moved or cleared it, so this is a last check.
        if state is not None and retirable(state):
            log.info("order %s removed: ended as %s and untouched for %d days",
                     order_id, state.status, settings.order_retention_days)
            del orders[order_id]

    stage = Stage("orders", (topics.ORDERS, topics.PAYMENTS, topics.ORDER_COMMANDS,
                             topics.RISK_DECISIONS),
                  (ORDER_STATE, BOOKS, RECON_STATE, RECON_BOOKS),
                  _decoder(catalog, EventTimeBounds.of_seconds(settings.max_event_skew_s,
                                                        settings.max_event_age_s),
                           settings.max_amount_minor, configured_providers(settings)), handle,
                  keyed={topics.ORDERS: order_key(catalog)}, outputs=ORDER_OUTPUTS)
    # Orphan deadlines and removals; a quiet partition's ticks let orphans pass too.
    return with_timers(stage, TimerSpec(BOOKS.name, on_due, event_time=_event_time))


def _event_time(decoded: Decoded) -> int:
    return decoded.event_time


def order_key(catalog: SchemaCatalog) -> KeyOf:
    """An order joins by order_id: its key, or (a null or empty key) the one in its value."""
    return key_or_field(lambda value: catalog.decode("OrderEvent", value)["order_id"])
