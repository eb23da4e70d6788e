"""Settlement intake and the batches' control totals.

Lines of `topup.settlements` are re-keyed by order_id for reconciliation and by batch_id
for the control totals; a BATCH_CLOSED goes to its batch and, as the provider's
watermark, to every reconciliation partition (a broadcast, for the reason the control
stage broadcasts: each partition folds it in among its own events, replayably).
"""

from __future__ import annotations

from typing import Any

from streams import topics
from streams.codecs import DecodeError, SchemaCatalog
from streams.config import Settings
from streams.domain.common.configured_providers import (
    ProviderNotConfigured,
    check_configured,
    configured_providers,
)
from streams.domain.common.int64 import check_amount_limit
from streams.domain.common.time import Tick
from streams.domain.recon.batches import BatchContext, BatchState
from streams.domain.recon.batches import step as batch_step
from streams.domain.recon.inputs import (
    BatchClosed,
    SettlementLine,
    check_line_amount,
    parse_settlement,
)
from streams.internal_records import SettledInput, SettledRecord
from streams.runtime.context import Context, Record, Send, correlation_headers
from streams.runtime.stage import Stage
from streams.runtime.store import StoreSpec
from streams.runtime.timers import TimerSpec, to_the_hour, with_timers
from streams.stages.decoding import avro_decoder
from streams.stages.outputs import publish_outputs
from streams.stages.state_family import STATE

BATCHES = StoreSpec("settlement-batches", family=STATE)


def intake_stage(settings: Settings, catalog: SchemaCatalog) -> Stage:
    partitions = settings.partitions
    decode_avro = avro_decoder(catalog, "SettlementRecord")
    providers = configured_providers(settings)

    def decode(record: Record) -> SettlementLine | BatchClosed:
        try:
            parsed = parse_settlement(decode_avro(record))
            check_configured("settlement record", parsed.provider, providers)
            if isinstance(parsed, SettlementLine):
                check_line_amount(parsed)
                for name in ("amount_minor", "fee_minor"):
                    check_amount_limit(name, getattr(parsed, name), settings.max_amount_minor)
            return parsed
        except ProviderNotConfigured as exc:
            raise DecodeError("UNKNOWN_PROVIDER", f"settlement record refused: {exc}") from None
        except ValueError as exc:
            if isinstance(exc, DecodeError):
                raise
            raise DecodeError("BAD_PAYLOAD", f"settlement record refused: {exc}") from None

    def handle(ctx: Context, parsed: SettlementLine | BatchClosed) -> None:
        headers = correlation_headers(ctx.record.correlation_id)
        ctx.send(Send(topics.SETTLEMENT_BATCHES, parsed.batch_id.encode(),
                      topics.SETTLEMENT_BATCHES_TOPIC.encode(
                          SettledRecord(parsed, parsed.settled_at)), headers))
        if isinstance(parsed, SettlementLine):
            value = topics.RECON_INPUTS_TOPIC.encode(SettledInput(parsed, parsed.settled_at))
            ctx.send(Send(topics.RECON_INPUTS, parsed.order_id.encode(), value, headers))
            return
        mark = parsed.watermark()
        if mark is not None:
            value = topics.RECON_INPUTS_TOPIC.encode(SettledInput(mark, parsed.settled_at))
            for partition in range(partitions):
                ctx.send(Send(topics.RECON_INPUTS, parsed.batch_id.encode(), value, headers,
                              partition=partition))

    return Stage("settlements", (topics.SETTLEMENTS,), (), decode, handle,
                 outputs=(topics.RECON_INPUTS, topics.SETTLEMENT_BATCHES))


DEFAULT_BATCH_RETENTION_MS = 180 * 24 * 60 * 60 * 1000


def batches_stage(retention_ms: int = DEFAULT_BATCH_RETENTION_MS) -> Stage:
    def decode(record: Record) -> dict[str, Any]:
        try:
            settled = topics.SETTLEMENT_BATCHES_TOPIC.decode(record.value)
            return {"at": settled.at, "parsed": settled.record}
        except ValueError as exc:
            raise DecodeError("BAD_PAYLOAD", f"batch record refused: {exc}") from None

    def run(ctx: Context, batch_id: str, event: SettlementLine | BatchClosed | Tick,
            now: int) -> None:
        table = ctx.table(BATCHES.name)
        state = table.load(batch_id, BatchState)
        if isinstance(event, Tick) and state is not None and state.decided:
            # Judged, and untouched for the retention: nothing is left to decide.
            del table[batch_id]
            return
        state, alerts = batch_step(
            state, event, BatchContext(now_ms=now, correlation_id=ctx.record.correlation_id)
        )
        table[batch_id] = state
        publish_outputs(ctx, alerts)
        ctx.timers.schedule(batch_id, to_the_hour(now + retention_ms) if state.decided
                            else state.wake_at())

    def handle(ctx: Context, item: dict[str, Any]) -> None:
        parsed = item["parsed"]
        run(ctx, parsed.batch_id, parsed, item["at"])

    def on_due(ctx: Context, batch_id: str) -> None:
        now = ctx.timers.now
        run(ctx, batch_id, Tick(now), now)

    stage = Stage("batches", (topics.SETTLEMENT_BATCHES,), (BATCHES,), decode, handle,
                  outputs=(topics.ALERTS,))
    return with_timers(stage, TimerSpec(BATCHES.name, on_due, event_time=_batch_time))


def _batch_time(item: dict[str, Any]) -> int:
    at: int = item["at"]
    return at
