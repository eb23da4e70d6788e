"""Risk: fan out per dimension, count in windows, fan in by order, score, decide.

The risk stage (keyed by order_id) turns each CREATED order into one observation per
dimension it carries (user, account, device, ip, payment token), re-keyed by that
dimension onto topup.internal.risk-observations, and each payment outcome likewise. The
velocity stage (keyed by dimension) keeps the windowed counts and answers every attempt
with its counts, back on topup.internal.risk-answers to the order's partition. Both
gather what a batch sends to a partition into one record (streams.runtime.gathered).
When every dimension has answered, or event time passes the fan-in deadline, the rules
score the signals and the decision goes to topup.risk-decisions, where the order stage
reads it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from streams import topics
from streams.codecs import DecodeError, SchemaCatalog
from streams.config import PROVIDERS
from streams.domain.common.event_time import EventTimeBounds
from streams.domain.common.ids import derived_id
from streams.domain.common.int64 import MAX_AMOUNT_MINOR
from streams.domain.common.outputs import AuditOut
from streams.domain.common.payments import PaymentEvent
from streams.domain.orders.inputs import (
    OrderEvent,
    OrderEventType,
    check_order_amounts,
    check_order_provider,
)
from streams.domain.risk.fanin import (
    FanInConfig,
    FanInState,
    Ready,
    RiskOrder,
    add_answer,
    fan_out,
    on_time,
    payment_outcome,
    start,
)
from streams.domain.risk.rules import RuleSet, score
from streams.domain.risk.signals import build_signals
from streams.domain.risk.velocity import (
    DimensionCounts,
    LateObservation,
    Observation,
    ObservationKind,
    PromoRefundFlagged,
    VelocityConfig,
    VelocityState,
    observe,
    velocity_evidence,
)
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.runtime.context import Context, Record, Table, correlation_headers
from streams.runtime.gathered import Gathered
from streams.runtime.stage import Stage
from streams.runtime.store import StoreSpec
from streams.runtime.timers import Timers, TimerSpec, to_the_hour, with_timers
from streams.stages.orders import order_key
from streams.stages.state_family import STATE
from streams.stages.velocity_retention import RETIRE as RETIRE_ROW
from streams.stages.velocity_retention import RETIRES_PER_RECORD, keep_until, sweep_unwoken

FAN_IN = StoreSpec("risk-fanin", family=STATE)
FAN_IN_CONFIG = FanInConfig()
VELOCITY = StoreSpec("risk-velocity", family=STATE)

# The timer's key for a decided fan-in's removal; domain keys never start with '~'.
RETIRE = "~retire|"
DEFAULT_RETENTION_MS = 180 * 24 * 60 * 60 * 1000
DEFAULT_TIME_BOUNDS = EventTimeBounds()


def risk_stage(catalog: SchemaCatalog, rules: RuleSet, metrics: Metrics,
               time_bounds: EventTimeBounds = DEFAULT_TIME_BOUNDS,
               max_amount_minor: int = MAX_AMOUNT_MINOR,
               retention_ms: int = DEFAULT_RETENTION_MS,
               providers: Collection[str] = PROVIDERS, *, partitions: int) -> Stage:
    """`partitions`: the topology's partition count (TOPUP_PARTITIONS), which groups the
    observations by the partition they go to. No default: a wrong count would send every
    key to a partition that is not its own."""
    metrics.describe("topup_risk_decisions_total", "Risk decisions, by outcome")
    metrics.describe("topup_risk_rule_hits_total", "Rules that fired, by rule id")

    def decode(record: Record) -> Any:
        # Orders and payments are the order stage's input too; it dead-letters bad ones.
        try:
            if record.topic == topics.RISK_ANSWERS:
                return topics.RISK_ANSWERS_TOPIC.decode(record.value)
            if record.topic == topics.ORDERS:
                order = OrderEvent.from_record(catalog.decode("OrderEvent", record.value or b""))
                # The same bound as the order stage's, which dead-letters it: an order
                # from the far future must not move this stage's windows either.
                time_bounds.check("occurred_at", order.occurred_at, record.timestamp_ms)
                check_order_amounts(order, max_amount_minor)
                check_order_provider(order, providers)
                return order
            return topics.PAYMENTS_TOPIC.decode(record.value).event
        except (DecodeError, ValueError, KeyError, TypeError) as exc:
            if record.topic == topics.RISK_ANSWERS:
                raise DecodeError("BAD_PAYLOAD", f"risk answer refused: {exc}") from None
            return None

    def handle(ctx: Context, item: Any) -> None:
        if item is None:
            return
        table = ctx.table(FAN_IN.name)
        timers = ctx.timers
        if isinstance(item, tuple):
            # Answers gathered from a velocity partition: for several orders, each
            # decided as its fan-in completes.
            for answer in item:
                if (ready := answered(table, timers, answer)) is not None:
                    _decide(ctx, ready, rules, metrics)
            return
        headers = correlation_headers(ctx.record.correlation_id)
        if isinstance(item, OrderEvent):
            if item.type is not OrderEventType.CREATED:
                return
            order = RiskOrder.from_event(item)
            state = _fan_in(table, order.order_id)
            if state is None or state.order is None:
                _send_observations(ctx, fan_out(order, ObservationKind.ATTEMPT,
                                                order.occurred_at), headers, partitions)
            state, ready = start(state, order, FAN_IN_CONFIG, arrived_at=timers.now)
            table[order.order_id] = state
            timers.schedule(order.order_id, None if state.completed else state.deadline)
            retire_when_decided(timers, state)
            if ready is not None:
                _decide(ctx, ready, rules, metrics)
        else:
            _payment_outcome(ctx, table, item, headers, partitions)

    def answered(table: Table, timers: Timers, answer: DimensionCounts) -> Ready | None:
        state, ready = add_answer(_fan_in(table, answer.order_id), answer)
        table[answer.order_id] = state
        if state.order is not None:
            # The clock runs on answers: a fan-in times out once answers for orders
            # after its deadline are back and its own are not. Run on orders, a backlog
            # would time out every fan-in before its answers could return.
            timers.advance(state.order.occurred_at)
        if state.completed:
            timers.cancel(answer.order_id)
        retire_when_decided(timers, state)
        return ready

    def retire_when_decided(timers: Timers, state: FanInState) -> None:
        """A decided fan-in is kept for the orders' retention (a repeated CREATED within it
        is ignored, as one after it is refused by the order stage), then removed."""
        if state.completed and state.order is not None:
            timers.schedule(RETIRE + state.order_id,
                            to_the_hour(max(timers.now, state.order.occurred_at)
                                        + retention_ms))

    def on_due(ctx: Context, order_id: str) -> None:
        """A fan-in whose answers did not all come back in time is decided without them."""
        table = ctx.table(FAN_IN.name)
        if order_id.startswith(RETIRE):
            retire(table, order_id.removeprefix(RETIRE))
            return
        waiting = _fan_in(table, order_id) or FanInState(order_id)
        state, ready = on_time(waiting, ctx.timers.now)
        table[order_id] = state
        retire_when_decided(ctx.timers, state)
        if ready is not None:
            _decide(ctx, ready, rules, metrics)

    def retire(table: Table, order_id: str) -> None:
        del table[order_id]
        # The payment outcomes already fanned out (`order_id|kind|txn|refund`): a later
        # one finds no fan-in and is not counted, as for an order never seen.
        for key, _ in table.scan_prefix(f"{order_id}|"):
            del table[key]

    stage = Stage("risk", (topics.ORDERS, topics.PAYMENTS, topics.RISK_ANSWERS), (FAN_IN,),
                  decode, handle, keyed={topics.ORDERS: order_key(catalog)},
                  outputs=(topics.RISK_OBSERVATIONS, topics.RISK_DECISIONS, topics.AUDIT))
    # No `event_time`: the fan-in clock runs on the answers, which `handle` reads from
    # state; a quiet partition's ticks time out a fan-in whose answers never come back.
    return with_timers(stage, TimerSpec(FAN_IN.name, on_due))


def _fan_in(table: Table, order_id: str) -> FanInState | None:
    return table.load(order_id, FanInState)


def _send_observations(
    ctx: Context, observations: tuple[Observation, ...], headers: Any, partitions: int
) -> None:
    """Gathered by the partition each goes to: a velocity partition reads one record per
    batch, not one per order or per dimension."""
    for observation in observations:
        key = observation.routing_key.encode()
        ctx.gather(Gathered(topics.RISK_OBSERVATIONS, partition_for(key, partitions), key,
                            (observation,), topics.RISK_OBSERVATIONS_TOPIC.encode, headers))


def _payment_outcome(ctx: Context, table: Table, event: PaymentEvent, headers: Any,
                     partitions: int) -> None:
    outcome = payment_outcome(_fan_in(table, event.order_id), event)
    if outcome is None or table.get(outcome.key) is not None:
        return
    table[outcome.key] = event.occurred_at
    _send_observations(ctx, outcome.observations, headers, partitions)


def _decide(ctx: Context, ready: Ready, rules: RuleSet, metrics: Metrics) -> None:
    assessment = score(rules, build_signals(ready))
    order = ready.order
    record = assessment.to_record(order.order_id, order.account_id, ready.decided_at)
    ctx.publish(topics.RISK_DECISIONS, order.order_id, record)
    metrics.inc("topup_risk_decisions_total", decision=assessment.decision.value)
    for reason in assessment.reasons:
        metrics.inc("topup_risk_rule_hits_total", rule=reason)
    audit = AuditOut(
        audit_id=derived_id("audit", "risk", order.order_id),
        subject=order.order_id,
        action=f"RISK_{assessment.decision.value}",
        rule=",".join(assessment.reasons) or "no-rule-fired",
        inputs={
            "score": str(assessment.score),
            "rules_version": assessment.rules_version,
            "missing_dimensions": ",".join(sorted(d.value for d in ready.missing)),
            "timed_out": str(ready.timed_out).lower(),
            "bonus_withheld": str(assessment.bonus_withheld).lower(),
            **velocity_evidence(ready.answers),
        },
        outcome=assessment.decision.value,
        actor=None,
        at=ready.decided_at,
    )
    ctx.publish(topics.AUDIT, audit.key, audit.to_record())


# How far event time may be ahead of the broker timestamp by default (TOPUP_MAX_EVENT_SKEW_S).
DEFAULT_RETIRE_SLACK_MS = DEFAULT_TIME_BOUNDS.ahead_ms


def velocity_stage(metrics: Metrics, config: VelocityConfig | None = None,
                   retire_slack_ms: int = DEFAULT_RETIRE_SLACK_MS, *, partitions: int) -> Stage:
    """`retire_slack_ms`: a row is removed once its partition's event time is this far past
    the row's `retire_at`. An observation that far behind its partition's event time may
    find its key's history gone (counted in topup_risk_velocity_behind_retention_total);
    one within it is answered exactly as if no row were ever removed. Its default is the
    allowed event-time skew, so one record dated as far ahead as the edges accept cannot
    remove a row that later, honestly dated traffic would still see.

    `partitions`: the topology's partition count, which gathers the answers by their
    order's partition."""
    config = config or VelocityConfig()
    metrics.describe("topup_risk_late_observations_total",
                     "Observations older than the window grace, not counted (audited)")
    metrics.describe("topup_risk_velocity_rows_retired_total",
                     "Velocity rows removed once no window or promotion period can see them")
    metrics.describe("topup_risk_velocity_behind_retention_total",
                     "Observations further behind their partition's event time than the "
                     "retirement slack: their key's history may already be removed")

    def decode(record: Record) -> tuple[Observation, ...]:
        try:
            return topics.RISK_OBSERVATIONS_TOPIC.decode(record.value)
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError("BAD_PAYLOAD", f"risk observation refused: {exc}") from None

    def handle(ctx: Context, observations: tuple[Observation, ...]) -> None:
        table = ctx.table(VELOCITY.name)
        timers = ctx.timers
        headers = correlation_headers(ctx.record.correlation_id)
        for observation in observations:
            # A gathered record holds several orders' observations: time moves with each,
            # as it would with a record each, so behind means behind the partition's
            # event time before this observation (never behind itself).
            timers.advance(observation.occurred_at)
            if observation.occurred_at < timers.now - retire_slack_ms:
                metrics.inc("topup_risk_velocity_behind_retention_total",
                            dimension=observation.dimension.value)
            key = observation.routing_key
            state = table.load(key, VelocityState) or VelocityState()
            state, outputs = observe(state, observation, config)
            table[key] = state
            keep_until(timers, key, state, config, retire_slack_ms)
            for output in outputs:
                if isinstance(output, DimensionCounts):
                    order = output.order_id.encode()
                    ctx.gather(Gathered(topics.RISK_ANSWERS, partition_for(order, partitions),
                                        order, (output,), topics.RISK_ANSWERS_TOPIC.encode,
                                        headers))
                elif isinstance(output, LateObservation):
                    metrics.inc("topup_risk_late_observations_total",
                                dimension=observation.dimension.value)
                    _audit_velocity(ctx, "LATE_OBSERVATION", observation,
                                    output.audit_inputs())
                elif isinstance(output, PromoRefundFlagged):
                    _audit_velocity(ctx, "PROMO_REFUND_FLAGGED", observation, {
                        "promo_id": output.promo_id,
                        "refunded_redemptions": str(output.refunded_redemptions),
                    })
        sweep_unwoken(table, timers, ctx.record.partition, config, retire_slack_ms)

    def on_due(ctx: Context, wake: str) -> None:
        # Every wake of this stage is a row's removal.
        del ctx.table(VELOCITY.name)[wake.removeprefix(RETIRE_ROW)]
        metrics.inc("topup_risk_velocity_rows_retired_total")

    stage = Stage("velocity", (topics.RISK_OBSERVATIONS,), (VELOCITY,), decode, handle,
                  outputs=(topics.RISK_ANSWERS, topics.AUDIT))
    # Idle ticks too: a quiet partition must still shed rows past their time, or a
    # spell without observations would hold them for good. Ticks extrapolate from the
    # last observation by the wall-clock time that passed, so an honestly dated
    # observation is never more than the slack behind and still finds its row.
    return with_timers(stage, TimerSpec(VELOCITY.name, on_due, event_time=_observed_at,
                                        due_limit=RETIRES_PER_RECORD))


def _observed_at(observations: tuple[Observation, ...]) -> int:
    # The earliest: `handle` advances to each observation's time as it comes to it.
    return min(observation.occurred_at for observation in observations)


def _audit_velocity(
    ctx: Context, action: str, observation: Observation, inputs: dict[str, str]
) -> None:
    audit = AuditOut(
        audit_id=derived_id("audit", action, observation.routing_key, observation.order_id,
                            observation.kind.value),
        subject=observation.order_id,
        action=action,
        rule=f"velocity.{observation.dimension.value}",
        inputs=inputs,
        outcome="NOT_COUNTED" if action == "LATE_OBSERVATION" else "FLAGGED",
        actor=None,
        at=observation.occurred_at,
    )
    ctx.publish(topics.AUDIT, audit.key, audit.to_record())
