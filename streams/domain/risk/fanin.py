"""The order's side of velocity (DESIGN.md principle 3): fan out, then fan in.

`fan_out` turns an order event into one `Observation` per dimension the order carries.
The answers (`DimensionCounts`, keyed by order_id) come back to the order's partition,
where one `FanInState` per order collects them. `Ready` is returned exactly once: when
every expected dimension has answered, or when event time passes the deadline first
(`on_time`), which is itself a signal for the rules.

Keep the row after it completes, without its answers: stragglers are then recognised and
ignored, and payment outcomes fan out from the `RiskOrder` it holds (the order machine's
facts have no device, ip or token).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.domain.common.evolve import evolve, init_fields
from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.domain.orders.inputs import OrderEvent, OrderEventType
from streams.domain.risk.velocity import Dimension, DimensionCounts, Observation, ObservationKind


@dataclass(frozen=True, slots=True)
class RiskOrder:
    """What risk needs from a CREATED order, locked in at creation."""

    order_id: str
    account_id: str
    user_id: str
    occurred_at: int
    amount_minor: int
    currency: str
    device_id: str | None = None
    ip: str | None = None
    payment_token: str | None = None
    account_created_at: int | None = None
    user_verified: bool = False
    promo_id: str | None = None
    promo_bonus_minor: int = 0

    @classmethod
    def from_event(cls, event: OrderEvent) -> RiskOrder:
        if event.type is not OrderEventType.CREATED:
            raise ValueError("risk orders come from CREATED events")
        return cls(
            order_id=event.order_id,
            account_id=event.account_id,
            user_id=event.user_id,
            occurred_at=event.occurred_at,
            amount_minor=event.amount_minor,
            currency=event.currency,
            device_id=event.device_id,
            ip=event.ip,
            payment_token=event.payment_token,
            account_created_at=event.account_created_at,
            user_verified=event.user_verified,
            promo_id=event.promo_id,
            promo_bonus_minor=event.promo_bonus_minor,
        )

    @property
    def dimension_keys(self) -> dict[Dimension, str]:
        """The dimensions this order carries (absent ones are neither sent nor awaited)."""
        candidates = {
            Dimension.USER: self.user_id,
            Dimension.ACCOUNT: self.account_id,
            Dimension.DEVICE: self.device_id,
            Dimension.IP: self.ip,
            Dimension.PAYMENT_TOKEN: self.payment_token,
        }
        return {dimension: key for dimension, key in candidates.items() if key}

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in init_fields(type(self))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskOrder:
        return cls(**{name: data[name] for name in init_fields(cls)})


def fan_out(order: RiskOrder, kind: ObservationKind, occurred_at: int) -> tuple[Observation, ...]:
    """One observation per dimension: ATTEMPT at CREATED (occurred_at = the order's),
    FAILURE / SUCCESS / REFUND at the payment outcome's event time."""
    return tuple(
        Observation(
            dimension=dimension,
            key=key,
            kind=kind,
            order_id=order.order_id,
            account_id=order.account_id,
            occurred_at=occurred_at,
            amount_minor=order.amount_minor,
            currency=order.currency,
            promo_id=order.promo_id,
        )
        for dimension, key in order.dimension_keys.items()
    )


@dataclass(frozen=True, slots=True)
class FanInConfig:
    # Answers normally come back within milliseconds; waiting longer only delays credits.
    deadline_ms: int = 2_000

    def __post_init__(self) -> None:
        if type(self.deadline_ms) is not int or self.deadline_ms < 0:
            raise ValueError("deadline_ms must be a non-negative int")


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the scoring needs. `decided_at` is the order's own time when complete,
    the deadline when timed out: never the time a worker happened to notice."""

    order: RiskOrder
    answers: Mapping[Dimension, DimensionCounts]
    missing: frozenset[Dimension]
    timed_out: bool
    decided_at: int


@dataclass(frozen=True, slots=True)
class FanInState:
    """One order's fan-in; `order` is None while answers arrive before the order does."""

    order_id: str
    order: RiskOrder | None = None
    deadline: int | None = None
    answers: Mapping[Dimension, DimensionCounts] = field(default_factory=dict)
    completed: bool = False

    @property
    def expected(self) -> frozenset[Dimension]:
        return frozenset(self.order.dimension_keys) if self.order else frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "order": None if self.order is None else self.order.to_dict(),
            "deadline": self.deadline,
            "answers": {dim.value: counts.to_dict() for dim, counts in self.answers.items()},
            "completed": self.completed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FanInState:
        order = data.get("order")
        return cls(
            order_id=data["order_id"],
            order=None if order is None else RiskOrder.from_dict(order),
            deadline=data.get("deadline"),
            answers={
                Dimension(dim): DimensionCounts.from_dict(counts)
                for dim, counts in data.get("answers", {}).items()
            },
            completed=data.get("completed", False),
        )


def _check_expected(order: RiskOrder, answers: Mapping[Dimension, DimensionCounts]) -> None:
    unexpected = set(answers) - set(order.dimension_keys)
    if unexpected:
        names = ", ".join(sorted(dim.value for dim in unexpected))
        raise ValueError(f"order {order.order_id} carries no {names}; its fan-out sent none")


def _complete(
    state: FanInState, order: RiskOrder, decided_at: int, *, timed_out: bool
) -> tuple[FanInState, Ready]:
    ready = Ready(
        order=order,
        answers=dict(state.answers),
        missing=state.expected - set(state.answers),
        timed_out=timed_out,
        decided_at=decided_at,
    )
    # The answers went into `ready`: a completed fan-in only recognises stragglers and
    # fans out payment outcomes, and is kept for the orders' retention, so it keeps the
    # order alone (about a third of the bytes with five dimensions' answers).
    return evolve(state, completed=True, answers={}), ready


def start(
    state: FanInState | None,
    order: RiskOrder,
    config: FanInConfig | None = None,
    arrived_at: int | None = None,
) -> tuple[FanInState, Ready | None]:
    """The order arrived (CREATED, after its fan-out was sent). A repeat is ignored.

    `arrived_at`: the partition's event time (its arrival watermark) when the order
    arrives. The answers get their time from then too, so an order that comes in behind
    the partition's event time is not timed out at once: an undecided fan-in's deadline
    is at least `arrived_at` plus the deadline."""
    config = config or FanInConfig()
    state, ready = _start(state, order, config)
    if arrived_at is not None and not state.completed and state.deadline is not None:
        state = evolve(state, deadline=max(state.deadline, arrived_at + config.deadline_ms))
    return state, ready


def _start(
    state: FanInState | None, order: RiskOrder, config: FanInConfig
) -> tuple[FanInState, Ready | None]:
    state = state or FanInState(order_id=order.order_id)
    if state.order_id != order.order_id:
        raise ValueError(f"fan-in of {state.order_id} got order {order.order_id}")
    if state.order is not None:
        return state, None
    _check_expected(order, state.answers)
    state = evolve(state, order=order, deadline=order.occurred_at + config.deadline_ms)
    if state.expected <= set(state.answers):
        return _complete(state, order, order.occurred_at, timed_out=False)
    return state, None


def add_answer(
    state: FanInState | None, counts: DimensionCounts
) -> tuple[FanInState, Ready | None]:
    """One dimension answered. The first answer per dimension wins; after completion every
    answer is a straggler and changes nothing."""
    state = state or FanInState(order_id=counts.order_id)
    if state.order_id != counts.order_id:
        raise ValueError(f"fan-in of {state.order_id} got an answer for {counts.order_id}")
    if state.completed or counts.dimension in state.answers:
        return state, None
    state = evolve(state, answers={**state.answers, counts.dimension: counts})
    order = state.order
    if order is None:
        return state, None
    _check_expected(order, state.answers)
    if state.expected <= set(state.answers):
        return _complete(state, order, order.occurred_at, timed_out=False)
    return state, None


def on_time(state: FanInState, now: int) -> tuple[FanInState, Ready | None]:
    """Event time on the order's partition reached `now`; past the deadline, decide with
    what has arrived."""
    order, deadline = state.order, state.deadline
    if state.completed or order is None or deadline is None or now < deadline:
        return state, None
    return _complete(state, order, deadline, timed_out=True)


# The payment outcomes velocity counts, as what they are counted as.
OUTCOME_KINDS: Mapping[PaymentKind, ObservationKind] = {
    PaymentKind.PAYMENT_SUCCEEDED: ObservationKind.SUCCESS,
    PaymentKind.PAYMENT_FAILED: ObservationKind.FAILURE,
    PaymentKind.REFUND_SUCCEEDED: ObservationKind.REFUND,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """A payment outcome to count once: `key` names it whatever path (callback, re-sent
    callback, settlement proof) reports it, since velocity counts are not idempotent.
    The caller keeps which keys it has counted (as `key`, beside the fan-in) and fans out
    `observations` only for a key not yet counted."""

    key: str
    observations: tuple[Observation, ...]


def payment_outcome(state: FanInState | None, event: PaymentEvent) -> Outcome | None:
    """The outcome `event` reports for the order of this fan-in, or None: not a kind
    velocity counts, or no order seen here (an outcome of an unknown order is not
    counted, as after the fan-in's removal)."""
    kind = OUTCOME_KINDS.get(event.kind)
    if kind is None or state is None or state.order is None:
        return None
    return Outcome(outcome_key(event, kind), fan_out(state.order, kind, event.occurred_at))


def outcome_key(event: PaymentEvent, kind: ObservationKind) -> str:
    """What names one outcome, whatever path reports it. Prefixed by the order id, so the
    fan-in's removal finds its outcomes by prefix."""
    return f"{event.order_id}|{kind.value}|{event.external_txn_id}|{event.refund_id}"
