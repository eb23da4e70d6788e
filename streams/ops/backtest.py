"""Backtest: recorded orders and payment outcomes replayed through the risk domain with a
rule file, compared with the rules in force.

The replay runs the risk stages' pure steps in one process (fan-out per dimension,
velocity windows per dimension key, fan-in per order, signals, score), in event-time
order, with every answer returned (so no fan-in times out). It writes the new rules'
decisions to `topup.risk-decisions.shadow.<run-id>` (`streams.ops.shadow`) and nothing else.
Both sides of the comparison are replays of the same inputs, the current rules and the
new ones, so a difference is the rules' doing and nothing else; how closely the replay
with the current rules reproduces the recorded decisions is reported as its fidelity.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from streams import topics, wire
from streams.codecs import DecodeError, default_catalog
from streams.config import Settings
from streams.domain.common.payments import PaymentEvent
from streams.domain.orders.inputs import OrderEvent, OrderEventType
from streams.domain.risk.fanin import (
    OUTCOME_KINDS,
    FanInState,
    RiskOrder,
    add_answer,
    fan_out,
    outcome_key,
    start,
)
from streams.domain.risk.rules import RiskAssessment, RuleSet, score
from streams.domain.risk.signals import build_signals
from streams.domain.risk.velocity import (
    DimensionCounts,
    Observation,
    ObservationKind,
    VelocityState,
)
from streams.domain.risk.velocity import observe as observe_velocity
from streams.kafka_clients import ConsumedRecord
from streams.ops.scan import ProgressHook, scan
from streams.ops.shadow import write_shadow
from streams.stages.risk import FAN_IN_CONFIG

BACKTEST_TOPICS = (topics.ORDERS, topics.PAYMENTS, topics.RISK_DECISIONS, topics.ORDER_STATUS,
                   topics.RECON_BREAKS)


@dataclass(frozen=True)
class Outcome:
    """A payment outcome the risk stage counts: success, failure or refund."""

    order_id: str
    kind: ObservationKind
    occurred_at: int
    dedup_key: str


@dataclass
class RiskReplay:
    """The risk stages' steps in one process, fed in event-time order."""

    rules: RuleSet
    velocity: dict[str, VelocityState] = field(default_factory=dict)
    orders: dict[str, RiskOrder] = field(default_factory=dict)
    decisions: dict[str, RiskAssessment] = field(default_factory=dict)
    decided_at: dict[str, int] = field(default_factory=dict)
    _seen_outcomes: set[str] = field(default_factory=set)

    def run(self, orders: Iterable[OrderEvent], outcomes: Iterable[Outcome]) -> None:
        # At one instant an order comes before the outcomes of its payment.
        timeline: list[tuple[int, int, OrderEvent | Outcome]] = [
            *((o.occurred_at, 0, o) for o in orders),
            *((o.occurred_at, 1, o) for o in outcomes),
        ]
        for _, _, item in sorted(timeline, key=lambda t: (t[0], t[1])):
            if isinstance(item, OrderEvent):
                self._created(item)
            else:
                self._outcome(item)

    def _observe(self, observation: Observation) -> list[DimensionCounts]:
        state = self.velocity.get(observation.routing_key) or VelocityState()
        state, outputs = observe_velocity(state, observation)
        # State and answers pass through JSON in the live stages (stores, topics): so here.
        self.velocity[observation.routing_key] = VelocityState.from_dict(_json(state.to_dict()))
        return [DimensionCounts.from_dict(_json(output.to_dict()))
                for output in outputs if isinstance(output, DimensionCounts)]

    def _created(self, event: OrderEvent) -> None:
        if event.order_id in self.orders:
            return
        order = RiskOrder.from_event(event)
        self.orders[order.order_id] = order
        state, ready = start(FanInState(order.order_id), order, FAN_IN_CONFIG)
        for observation in fan_out(order, ObservationKind.ATTEMPT, order.occurred_at):
            for answer in self._observe(observation):
                state, answered = add_answer(state, answer)
                ready = ready or answered
        if ready is not None:
            self.decisions[order.order_id] = score(self.rules, build_signals(ready))
            self.decided_at[order.order_id] = ready.decided_at

    def _outcome(self, outcome: Outcome) -> None:
        order = self.orders.get(outcome.order_id)
        if order is None or outcome.dedup_key in self._seen_outcomes:
            return
        self._seen_outcomes.add(outcome.dedup_key)
        for observation in fan_out(order, outcome.kind, outcome.occurred_at):
            self._observe(observation)


def _json(data: dict[str, Any]) -> Any:
    return wire.loads(wire.dumps(data))


def outcome_of(payment: PaymentEvent) -> Outcome | None:
    kind = OUTCOME_KINDS.get(payment.kind)
    if kind is None:
        return None
    # The same key the risk stage counts an outcome once by.
    return Outcome(payment.order_id, kind, payment.occurred_at, outcome_key(payment, kind))


@dataclass(frozen=True)
class Recorded:
    orders: list[OrderEvent]
    outcomes: list[Outcome]
    decisions: dict[str, str]  # order_id -> the latest recorded decision
    statuses: dict[str, str]  # order_id -> the latest status
    breaks: dict[str, list[str]]  # order_id -> reconciliation break categories


def recorded(records: Iterable[ConsumedRecord]) -> Recorded:
    catalog = default_catalog()
    orders: list[OrderEvent] = []
    outcomes: list[Outcome] = []
    decisions: dict[str, str] = {}
    statuses: dict[str, str] = {}
    breaks: dict[str, list[str]] = {}
    versions: dict[str, int] = {}
    for record in records:
        if record.value is None:
            continue
        try:
            if record.topic == topics.ORDERS:
                event = OrderEvent.from_record(catalog.decode("OrderEvent", record.value))
                if event.type is OrderEventType.CREATED:
                    orders.append(event)
            elif record.topic == topics.PAYMENTS:
                outcome = outcome_of(topics.PAYMENTS_TOPIC.decode(record.value).event)
                if outcome is not None:
                    outcomes.append(outcome)
            elif record.topic == topics.RISK_DECISIONS:
                decision = catalog.decode("RiskDecision", record.value)
                decisions[decision["order_id"]] = decision["decision"]
            elif record.topic == topics.ORDER_STATUS:
                change = catalog.decode("OrderStatus", record.value)
                if change["version"] > versions.get(change["order_id"], 0):
                    versions[change["order_id"]] = change["version"]
                    statuses[change["order_id"]] = change["status"]
            elif record.topic == topics.RECON_BREAKS:
                found = catalog.decode("ReconBreak", record.value)
                if found["order_id"]:
                    breaks.setdefault(found["order_id"], []).append(found["category"])
        except (DecodeError, ValueError, KeyError, TypeError):
            continue  # the stages dead-letter what they cannot read; so does the replay
    return Recorded(orders, outcomes, decisions, statuses, breaks)


@dataclass(frozen=True)
class BacktestReport:
    orders: int  # orders in the window, decided by both replays
    matrix: dict[str, dict[str, int]]  # current decision -> new decision -> orders
    changed: list[dict[str, Any]]  # order_id, amount, currency, current, new, outcome
    amount_changed_minor: dict[str, int]  # currency -> sum of changed orders' amounts
    rule_hits: dict[str, dict[str, int]]  # rule id -> {"current": n, "new": n}
    outcomes: dict[str, dict[str, int]]  # known outcome -> new decision -> changed orders
    fidelity: dict[str, int]  # the current-rules replay against the recorded decisions
    # The new rules' decisions on the orders in range, as the risk stage would write them.
    new_decisions: list[dict[str, Any]] = field(default_factory=list, repr=False)
    shadow_topic: str | None = None  # where they were written (None: not written)
    shadow_records: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data.pop("new_decisions")
        return data


def known_outcome(inputs: Recorded, order_id: str) -> str:
    """What has become of an order since its decision, as the topics tell it."""
    if order_id in inputs.breaks:
        return "RECON_BREAK:" + ",".join(sorted(set(inputs.breaks[order_id])))
    return inputs.statuses.get(order_id, "UNKNOWN")


def compare(
    inputs: Recorded, current: RuleSet, new: RuleSet,
    since: int | None = None, until: int | None = None,
) -> BacktestReport:
    """Replay the inputs with both rule files; report on orders created in [since, until).

    Events after `until` are not replayed; those before `since` are, for the velocity
    windows of the orders in range.
    """
    def before_until(at: int) -> bool:
        return until is None or at < until

    orders = [o for o in inputs.orders if before_until(o.occurred_at)]
    outcomes = [o for o in inputs.outcomes if before_until(o.occurred_at)]
    replays, runs = {}, {}
    for name, rules in (("current", current), ("new", new)):
        replay = RiskReplay(rules)
        replay.run(orders, outcomes)
        replays[name], runs[name] = replay.decisions, replay
    in_range = [o for o in orders if since is None or o.occurred_at >= since]
    matrix: dict[str, Counter[str]] = {}
    rule_hits: dict[str, Counter[str]] = {}
    changed: list[dict[str, Any]] = []
    amounts: Counter[str] = Counter()
    by_outcome: dict[str, Counter[str]] = {}
    fidelity: Counter[str] = Counter()
    decided = 0
    new_records: list[dict[str, Any]] = []
    for order in in_range:
        old, fresh = replays["current"].get(order.order_id), replays["new"].get(order.order_id)
        if old is None or fresh is None:
            continue
        decided += 1
        new_records.append(fresh.to_record(order.order_id, order.account_id,
                                           runs["new"].decided_at[order.order_id]))
        matrix.setdefault(old.decision.value, Counter())[fresh.decision.value] += 1
        for side, assessment in (("current", old), ("new", fresh)):
            for reason in assessment.reasons:
                rule_hits.setdefault(reason, Counter())[side] += 1
        live = inputs.decisions.get(order.order_id)
        if live is not None:
            fidelity["same" if live == old.decision.value else "different"] += 1
        if old.decision != fresh.decision:
            outcome = known_outcome(inputs, order.order_id)
            changed.append({"order_id": order.order_id, "amount_minor": order.amount_minor,
                            "currency": order.currency, "current": old.decision.value,
                            "new": fresh.decision.value, "outcome": outcome})
            amounts[order.currency] += order.amount_minor
            by_outcome.setdefault(outcome, Counter())[fresh.decision.value] += 1
    hits = {rule: {"current": c["current"], "new": c["new"]} for rule, c in rule_hits.items()
            if c["current"] != c["new"]}
    return BacktestReport(
        decided, {k: dict(v) for k, v in matrix.items()}, changed, dict(amounts),
        dict(sorted(hits.items())), {k: dict(v) for k, v in by_outcome.items()},
        {"same": fidelity["same"], "different": fidelity["different"]}, new_records,
    )


def backtest(
    settings: Settings, current: RuleSet, new: RuleSet, since: int | None, until: int | None,
    progress: ProgressHook | None = None, shadow: bool = True,
) -> BacktestReport:
    """The backtest report; with `shadow`, the new rules' decisions also written to
    `topup.risk-decisions.shadow.<run-id>`, and never to a live topic."""
    report = compare(recorded(scan(settings, BACKTEST_TOPICS, progress=progress)), current,
                     new, since, until)
    if not shadow:
        return report
    name, written = write_shadow(
        settings, topics.RISK_DECISIONS, uuid.uuid4().hex[:8],
        ((record["order_id"], record) for record in report.new_decisions))
    return replace(report, shadow_topic=name, shadow_records=written)
