"""The order's fan-out and fan-in: expected dimensions, Ready exactly once, the deadline."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.common.payments import PaymentKind
from streams.domain.orders.inputs import OrderEvent, OrderEventType
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
from streams.domain.risk.velocity import (
    WINDOW_NAMES,
    Dimension,
    DimensionCounts,
    ObservationKind,
    WindowCounts,
)
from tests.builders import payment_event

T0 = 1_741_003_200_000
ALL_DIMENSIONS = frozenset(Dimension)


def risk_order(**changes: object) -> RiskOrder:
    facts: dict[str, object] = {
        "order_id": "o1",
        "account_id": "a1",
        "user_id": "u1",
        "occurred_at": T0,
        "amount_minor": 5000,
        "currency": "CNY",
        "device_id": "d1",
        "ip": "192.0.2.1",
        "payment_token": "tok1",
        "account_created_at": T0 - 86_400_000,
        "user_verified": True,
        "promo_id": "P1",
        "promo_bonus_minor": 500,
    }
    facts.update(changes)
    return RiskOrder(**facts)  # type: ignore[arg-type]


def answer(dimension: Dimension, order_id: str = "o1", attempts: int = 1) -> DimensionCounts:
    counts = WindowCounts(attempts, 0, 0, 5000, 1, False)
    return DimensionCounts(order_id, dimension, "k", dict.fromkeys(WINDOW_NAMES, counts))


def test_risk_order_from_a_created_event() -> None:
    event = OrderEvent(
        event_id="e1",
        type=OrderEventType.CREATED,
        order_id="o1",
        occurred_at=T0,
        account_id="a1",
        user_id="u1",
        amount_minor=5000,
        currency="CNY",
        provider="stripe",
        merchant_id="m1",
        device_id="d1",
        ip="192.0.2.1",
        payment_token="tok1",
        account_created_at=T0 - 86_400_000,
        user_verified=True,
        promo_id="P1",
        promo_bonus_minor=500,
    )
    assert RiskOrder.from_event(event) == risk_order()
    with pytest.raises(ValueError, match="CREATED"):
        RiskOrder.from_event(replace(event, type=OrderEventType.CANCELED))


def test_fan_out_sends_only_the_dimensions_the_order_carries() -> None:
    order = risk_order(device_id=None, payment_token=None)
    observations = fan_out(order, ObservationKind.ATTEMPT, order.occurred_at)
    assert [(o.dimension, o.key) for o in observations] == [
        (Dimension.USER, "u1"),
        (Dimension.ACCOUNT, "a1"),
        (Dimension.IP, "192.0.2.1"),
    ]
    assert all(o.promo_id == "P1" and o.amount_minor == 5000 for o in observations)
    outcome = fan_out(order, ObservationKind.FAILURE, T0 + 30_000)
    assert {o.occurred_at for o in outcome} == {T0 + 30_000}


def test_ready_once_every_expected_dimension_answered() -> None:
    order = risk_order(device_id=None)
    state, ready = start(None, order)
    assert ready is None and state.deadline == T0 + 2_000
    for dimension in (Dimension.USER, Dimension.ACCOUNT, Dimension.IP):
        state, ready = add_answer(state, answer(dimension))
        assert ready is None
    state, ready = add_answer(state, answer(Dimension.PAYMENT_TOKEN))
    assert ready == Ready(
        order=order,
        answers={d: answer(d) for d in order.dimension_keys},
        missing=frozenset(),
        timed_out=False,
        decided_at=T0,
    )
    assert state.completed
    assert add_answer(state, answer(Dimension.USER)) == (state, None)
    assert on_time(state, T0 + 10_000) == (state, None)


def test_the_deadline_decides_with_what_arrived() -> None:
    state, _ = start(None, risk_order(), FanInConfig(deadline_ms=500))
    state, _ = add_answer(state, answer(Dimension.USER))
    assert on_time(state, T0 + 499) == (state, None)
    state, ready = on_time(state, T0 + 7_000)
    assert ready is not None
    assert ready.timed_out and ready.decided_at == T0 + 500
    assert ready.missing == ALL_DIMENSIONS - {Dimension.USER}
    assert add_answer(state, answer(Dimension.DEVICE)) == (state, None)


def test_a_completed_fan_in_keeps_its_order_and_not_its_answers() -> None:
    """It is kept for the orders' retention: the answers are in the decision already."""
    order = risk_order()
    state, _ = start(None, order)
    for dimension in ALL_DIMENSIONS:
        state, ready = add_answer(state, answer(dimension))
    assert ready is not None and set(ready.answers) == ALL_DIMENSIONS
    assert state == FanInState(order.order_id, order, T0 + 2_000, {}, completed=True)
    assert FanInState.from_dict(state.to_dict()) == state
    outcome = payment_outcome(state, payment_event(order.order_id))
    assert outcome is not None and len(outcome.observations) == len(ALL_DIMENSIONS)


def test_the_first_answer_per_dimension_wins() -> None:
    state, _ = start(None, risk_order())
    state, _ = add_answer(state, answer(Dimension.USER, attempts=1))
    state, ready = add_answer(state, answer(Dimension.USER, attempts=9))
    assert ready is None
    assert state.answers[Dimension.USER] == answer(Dimension.USER, attempts=1)


def test_answers_may_arrive_before_the_order() -> None:
    order = risk_order(device_id=None, ip=None, payment_token=None)
    state, ready = add_answer(None, answer(Dimension.USER))
    assert ready is None and on_time(state, T0 + 60_000) == (state, None)
    state, ready = add_answer(state, answer(Dimension.ACCOUNT))
    state, ready = start(state, order)
    assert ready is not None and not ready.timed_out


def test_a_repeated_order_changes_nothing() -> None:
    state, _ = start(None, risk_order())
    assert start(state, risk_order(amount_minor=1)) == (state, None)


def test_answers_for_another_order_or_an_absent_dimension_are_refused() -> None:
    state, _ = start(None, risk_order(device_id=None))
    with pytest.raises(ValueError, match="o2"):
        add_answer(state, answer(Dimension.USER, order_id="o2"))
    with pytest.raises(ValueError, match="carries no device"):
        add_answer(state, answer(Dimension.DEVICE))


def test_state_round_trips_through_json() -> None:
    state, _ = start(None, risk_order())
    state, _ = add_answer(state, answer(Dimension.IP))
    assert FanInState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


@settings(max_examples=200, deadline=None)
@given(
    present=st.sets(st.sampled_from([Dimension.DEVICE, Dimension.IP, Dimension.PAYMENT_TOKEN])),
    steps=st.lists(
        st.one_of(
            st.sampled_from(list(Dimension)),
            st.integers(0, 4_000).map(lambda ms: ("tick", ms)),
            st.just("start"),
        ),
        max_size=30,
    ),
)
def test_ready_comes_exactly_once_whatever_the_order_of_arrivals(
    present: set[Dimension], steps: list[object]
) -> None:
    order = risk_order(
        device_id="d1" if Dimension.DEVICE in present else None,
        ip="192.0.2.1" if Dimension.IP in present else None,
        payment_token="tok1" if Dimension.PAYMENT_TOKEN in present else None,
    )
    expected = set(order.dimension_keys)
    # Every answer and the order itself arrive eventually, in any order, among ticks.
    steps = [*steps, "start", *expected, ("tick", 10_000)]
    state: FanInState | None = None
    readies: list[Ready] = []
    for step in steps:
        if step == "start":
            state, ready = start(state, order)
        elif isinstance(step, tuple):
            if state is None:
                continue
            state, ready = on_time(state, T0 + step[1])
        elif step in expected:
            state, ready = add_answer(state, answer(step))
        else:
            continue
        if ready is not None:
            readies.append(ready)
        assert state is not None
        state = FanInState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert len(readies) == 1
    (ready,) = readies
    assert set(ready.answers) | ready.missing == expected
    assert ready.timed_out == bool(ready.missing)


def test_an_order_arriving_behind_the_partition_gets_its_deadline_from_its_arrival() -> None:
    config = FanInConfig(deadline_ms=500)
    state, _ = start(None, risk_order(), config, arrived_at=T0 + 60_000)
    assert state.deadline == T0 + 60_500
    assert on_time(state, T0 + 60_499) == (state, None)
    # Ahead of the partition, its own time rules.
    state, _ = start(None, risk_order(), config, arrived_at=T0 - 60_000)
    assert state.deadline == T0 + 500
    # Complete at once: no deadline is moved.
    answered = FanInState("o1", answers={dim: answer(dim) for dim in ALL_DIMENSIONS})
    state, ready = start(answered, risk_order(), config, arrived_at=T0 + 60_000)
    assert ready is not None and state.completed and state.deadline == T0 + 500


def test_a_payment_outcome_is_named_the_same_whatever_path_reports_it() -> None:
    state, _ = start(None, risk_order())
    paid = payment_event("o1", external_txn_id="txn-1")
    outcome = payment_outcome(state, paid)
    assert outcome is not None
    assert outcome.key == "o1|SUCCESS|txn-1|None"
    assert [o.kind for o in outcome.observations] == [ObservationKind.SUCCESS] * len(
        risk_order().dimension_keys)
    proof = replace(paid, event_id="settlement-proof-1")
    assert payment_outcome(state, proof).key == outcome.key  # type: ignore[union-attr]
    # Not counted: an order not seen here, and kinds velocity does not count.
    assert payment_outcome(None, paid) is None
    assert payment_outcome(FanInState("o1"), paid) is None
    asked = payment_event("o1", PaymentKind.REFUND_FAILED)
    assert payment_outcome(state, asked) is None
