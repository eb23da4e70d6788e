"""Reconciliation, keyed by order_id, and the mismatch rate, keyed by provider.

The recon stage joins what the ledger did (entries and order snapshots, handed over
in-process by the order stage, which shares the key and so the partition: a Kafka hop
there would only cost time) with what the provider settled (lines from settlement intake,
through topup.internal.recon-inputs) and calls the pure
`streams.domain.recon.machine.step`. It routes what comes back: breaks, alerts, audits,
freeze commands to `topup.control`, settlement proofs to the order stage's payment input
(so a missing credit is made by the one path every credit takes), and every decision to
the rate stage. Grace periods run in event time on the runtime's timers
(streams.runtime.timers) in recon-partitions; orders waiting for a provider's watermark
are indexed per (provider, merchant) in the partition's book.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from streams import topics
from streams.codecs import DecodeError
from streams.domain.common.time import Tick
from streams.domain.recon.inputs import ReconConfig, ReconContext, ReconInput, WatermarkAdvanced
from streams.domain.recon.machine import ReconOutput
from streams.domain.recon.machine import step as recon_step
from streams.domain.recon.outputs import ReconOutcome, SettlementProof
from streams.domain.recon.state import ReconState, Wake
from streams.domain.recon.thresholds import RateContext, RateInput, RateState, RateThresholds
from streams.domain.recon.thresholds import step as rate_step
from streams.internal_records import VerifiedPayment
from streams.runtime.context import Context, Record, Send, Table, correlation_headers
from streams.runtime.stage import Stage
from streams.runtime.store import StoreSpec
from streams.runtime.timers import TimerSpec, run_in_event_time, to_the_hour, with_timers
from streams.stages.outputs import publish_outputs
from streams.stages.state_family import STATE

RECON_STATE = StoreSpec("recon-state", family=STATE)
RECON_BOOKS = StoreSpec("recon-partitions", family=STATE)
RATES = StoreSpec("recon-rates", family=STATE)

@dataclass(frozen=True)
class Timed:
    input: ReconInput
    at: int


class ReconBook:
    """One partition's watermarks it has seen, and who waits for them. The waiting orders
    are index keys (`~wait|<provider>|<merchant>|<order_id>`), read only when that
    watermark moves."""

    def __init__(self, table: Table, partition: int, config: ReconConfig) -> None:
        self._table, self._covers_key = table, f"~covers-p{partition}"
        self.config = config
        self.covers: dict[str, int] = table.get(self._covers_key) or {}

    def waiting_for(self, watermark_key: str) -> list[str]:
        prefix = f"~wait|{watermark_key}|"
        return [key[len(prefix):] for key, _ in self._table.scan_prefix(prefix)]

    def wait(self, order_id: str, watermark_key: str | None) -> bool:
        """Let the order wait for this watermark only (None: for none); True if it was
        not waiting for it before."""
        table, of = self._table, f"~waits-on|{order_id}"
        old = table.get(of)
        if old == watermark_key:
            return False
        if old is not None:
            del table[f"~wait|{old}|{order_id}"]
        if watermark_key is None:
            del table[of]
            return False
        table[f"~wait|{watermark_key}|{order_id}"] = 1
        table[of] = watermark_key
        return True

    def save(self, covers_changed: bool) -> None:
        if covers_changed:
            self._table[self._covers_key] = self.covers


def _watermark_key(provider: str, merchant_id: str) -> str:
    return f"{provider}|{merchant_id}"


def _decode(record: Record) -> Timed:
    try:
        settled = topics.RECON_INPUTS_TOPIC.decode(record.value)
        return Timed(settled.input, settled.at)
    except ValueError as exc:
        raise DecodeError("BAD_PAYLOAD", f"reconciliation input refused: {exc}") from None


def recon_config(missing_credit_grace_s: int, retention_days: int = 180) -> ReconConfig:
    return ReconConfig(missing_credit_grace_ms=missing_credit_grace_s * 1000,
                       retention_ms=retention_days * 24 * 60 * 60 * 1000)


# The timer's key for a matched state's removal; domain keys never start with '~'.
RETIRE = "~retire|"
ENDED = {"CREDITED", "FAILED", "CANCELED", "REFUNDED", "REVERSED"}


def matched(state: ReconState, wake: Wake | None = None) -> bool:
    """Nothing left to check: the order has ended, every line is decided and every entry
    is covered by a line, so only a very late line could still concern it. `wake`: the
    state's, when the caller has it already."""
    if wake is None:
        wake = state.wake()
    return (wake.tick_at is None and wake.watermark_key is None
            and state.order is not None and state.order.status in ENDED)


# Reconciliation's outputs, also the order stage's: it reconciles in-process what it hands over.
RECON_OUTPUTS = (topics.RECON_BREAKS, topics.ALERTS, topics.AUDIT, topics.CONTROL,
                 topics.PAYMENTS, topics.RECON_OUTCOMES)


def recon_timers(config: ReconConfig) -> TimerSpec:
    """Reconciliation's timers, in recon-partitions: grace periods and removals. The order
    stage moves them too, for what it hands over in-process; only this stage's ticks do."""
    return TimerSpec(RECON_BOOKS.name, partial(_on_due, config=config),
                     event_time=_event_time)


def _event_time(timed: Timed) -> int:
    return timed.at


def recon_stage(config: ReconConfig | None = None) -> Stage:
    chosen = config or ReconConfig()
    stage = Stage("reconciliation", (topics.RECON_INPUTS,), (RECON_STATE, RECON_BOOKS),
                  _decode, partial(_reconcile, config=chosen), outputs=RECON_OUTPUTS)
    return with_timers(stage, recon_timers(chosen))


def reconcile(ctx: Context, timed: Timed, config: ReconConfig) -> None:
    """One input on the partition of its order, in event time. The order stage calls this
    in-process for what the ledger did (it shares the key, so the partition); settlement
    lines and watermarks arrive through topup.internal.recon-inputs."""
    run_in_event_time(ctx, recon_timers(config), partial(_reconcile, config=config), timed)


def _reconcile(ctx: Context, timed: Timed, config: ReconConfig) -> None:
    states = ctx.table(RECON_STATE.name)
    book = ReconBook(ctx.table(RECON_BOOKS.name), ctx.record.partition, config)
    correlation = ctx.record.correlation_id
    event = timed.input
    watermark = isinstance(event, WatermarkAdvanced)
    if watermark:
        key = _watermark_key(event.provider, event.merchant_id)
        book.covers[key] = max(book.covers.get(key, 0), event.covers_until)
        for order_id in book.waiting_for(key):
            _run(ctx, states, book, order_id, event, ctx.timers.now, correlation)
    else:
        _run(ctx, states, book, event.order_id, event, timed.at, correlation)
    book.save(covers_changed=watermark)


def _on_due(ctx: Context, key: str, config: ReconConfig) -> None:
    states = ctx.table(RECON_STATE.name)
    if key.startswith(RETIRE):
        order_id = key.removeprefix(RETIRE)
        state = states.load(order_id, ReconState)
        # Any input since the wake was set moved or cleared it: this is a last check.
        if state is not None and matched(state):
            del states[order_id]
        return
    book = ReconBook(ctx.table(RECON_BOOKS.name), ctx.record.partition, config)
    now = ctx.timers.now
    _run(ctx, states, book, key, Tick(now), now, None)


def _run(
    ctx: Context,
    states: Table,
    book: ReconBook,
    order_id: str,
    event: ReconInput | Tick,
    now: int,
    correlation: str | None,
) -> None:
    state = states.load(order_id, ReconState)
    if state is None and isinstance(event, Tick | WatermarkAdvanced):
        return  # nothing to reconcile yet
    state, outputs = recon_step(state, event, ReconContext(now_ms=now, correlation_id=correlation,
                                                     config=book.config))
    states[order_id] = state
    _route(ctx, outputs, now)
    wake = state.wake()
    timers = ctx.timers
    timers.schedule(order_id, wake.tick_at)
    timers.schedule(RETIRE + order_id, to_the_hour(timers.now + book.config.retention_ms)
                    if matched(state, wake) else None)
    wanted = None if wake.watermark_key is None else _watermark_key(*wake.watermark_key)
    # A newly waiting order is handed the watermark as it stands.
    newly_waiting = book.wait(order_id, wanted)
    if newly_waiting and wanted in book.covers and wake.watermark_key is not None:
        provider, merchant = wake.watermark_key
        current = WatermarkAdvanced(provider, merchant, book.covers[wanted])
        _run(ctx, states, book, order_id, current, now, correlation)


def _route(ctx: Context, outputs: Iterable[ReconOutput], now: int) -> None:
    published = []
    for output in outputs:
        if isinstance(output, SettlementProof):
            proof = VerifiedPayment(output.event, now, output.event.event_id)
            ctx.send(Send(topics.PAYMENTS, output.key.encode(),
                          topics.PAYMENTS_TOPIC.encode(proof),
                          correlation_headers(output.correlation_id)))
        elif isinstance(output, ReconOutcome):
            ctx.send(Send(topics.RECON_OUTCOMES, output.key.encode(),
                          topics.RECON_OUTCOMES_TOPIC.encode(output)))
        else:
            published.append(output)
    publish_outputs(ctx, published)


def rates_stage(thresholds: RateThresholds | None = None) -> Stage:
    limits = thresholds or RateThresholds()

    def decode(record: Record) -> RateInput:
        try:
            return topics.RECON_OUTCOMES_TOPIC.decode(record.value)
        except ValueError as exc:
            raise DecodeError("BAD_PAYLOAD", f"mismatch-rate input refused: {exc}") from None

    def run(ctx: Context, provider: str, event: RateInput | Tick, now: int) -> None:
        table = ctx.table(RATES.name)
        state = table.load(provider, RateState)
        state, alerts = rate_step(state, event, RateContext(now_ms=now, thresholds=limits))
        table[provider] = state
        publish_outputs(ctx, alerts)
        ctx.timers.schedule(provider, state.wake_at(limits))

    def handle(ctx: Context, event: RateInput) -> None:
        run(ctx, event.provider, event, _rate_time(event))

    def on_due(ctx: Context, provider: str) -> None:
        now = ctx.timers.now
        run(ctx, provider, Tick(now), now)

    stage = Stage("recon-rates", (topics.RECON_OUTCOMES,), (RATES,), decode, handle,
                  outputs=(topics.ALERTS,))
    return with_timers(stage, TimerSpec(RATES.name, on_due, event_time=_rate_time))


def _rate_time(event: RateInput) -> int:
    return event.decided_at if isinstance(event, ReconOutcome) else event.observed_at
