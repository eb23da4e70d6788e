"""Velocity windows for one dimension key: window edges, lateness, bounded state, and a
brute-force recount over the raw observations as the oracle."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.risk.velocity import (
    WINDOWS,
    Dimension,
    DimensionCounts,
    LateObservation,
    Observation,
    ObservationKind,
    PromoRefundFlagged,
    VelocityConfig,
    VelocityState,
    WindowCounts,
    observe,
)

NOON = int(datetime(2025, 3, 3, 12, 0, tzinfo=UTC).timestamp() * 1000)
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
CONFIG = VelocityConfig()


def obs(
    at: int,
    kind: ObservationKind = ObservationKind.ATTEMPT,
    *,
    order: str = "o1",
    account: str = "a1",
    amount: int = 1000,
    currency: str = "CNY",
    dimension: Dimension = Dimension.DEVICE,
    promo: str | None = None,
) -> Observation:
    return Observation(
        dimension=dimension,
        key="dev-1",
        kind=kind,
        order_id=order,
        account_id=account,
        occurred_at=at,
        amount_minor=amount,
        currency=currency,
        promo_id=promo,
    )


def feed(
    observations: Sequence[Observation], state: VelocityState | None = None
) -> tuple[VelocityState, list[object]]:
    state = state or VelocityState()
    outputs: list[object] = []
    for observation in observations:
        state, produced = observe(state, observation, CONFIG)
        outputs.extend(produced)
    return state, outputs


def answers(outputs: Sequence[object]) -> list[DimensionCounts]:
    return [output for output in outputs if isinstance(output, DimensionCounts)]


def test_burst_across_a_minute_boundary_is_one_burst() -> None:
    burst = [NOON + 50 * SECOND + i for i in range(3)] + [NOON + 70 * SECOND + i for i in range(3)]
    _, outputs = feed([obs(at, order=f"o{i}") for i, at in enumerate(burst)])
    counts = answers(outputs)
    assert [c.windows["1m"].attempts for c in counts] == [1, 2, 3, 4, 5, 6]


def test_the_minute_slides_past_old_events() -> None:
    events = [obs(NOON + 10 * SECOND, order="o1"), obs(NOON + 95 * SECOND, order="o2")]
    _, outputs = feed(events)
    last = answers(outputs)[-1]
    assert last.windows["1m"].attempts == 1
    assert last.windows["1h"].attempts == 2


def test_a_late_observation_within_grace_is_counted() -> None:
    state, _ = feed([obs(NOON + 10 * MINUTE, order="o1")])
    state, outputs = feed([obs(NOON + 6 * MINUTE, order="o2")], state)
    assert not [o for o in outputs if isinstance(o, LateObservation)]
    assert answers(outputs)[0].late is False
    _, outputs = feed([obs(NOON + 10 * MINUTE + 30 * SECOND, order="o3")], state)
    assert answers(outputs)[0].windows["1h"].attempts == 3


def test_a_late_observation_beyond_grace_is_reported_not_counted() -> None:
    state, _ = feed([obs(NOON + 10 * MINUTE, order="o1")])
    too_old = obs(NOON + 4 * MINUTE, order="o2")
    state, outputs = feed([too_old], state)
    late = [o for o in outputs if isinstance(o, LateObservation)]
    assert late == [LateObservation(too_old, NOON + 10 * MINUTE, CONFIG.grace_ms)]
    assert late[0].lateness_ms == 6 * MINUTE
    assert late[0].audit_inputs()["lateness_ms"] == str(6 * MINUTE)
    # The late attempt is still answered, so its fan-in is not left waiting.
    assert answers(outputs)[0].late is True
    _, outputs = feed([obs(NOON + 10 * MINUTE + 30 * SECOND, order="o3")], state)
    assert answers(outputs)[0].windows["1h"].attempts == 2


def test_a_late_payment_outcome_is_reported_too() -> None:
    state, _ = feed([obs(NOON + 10 * MINUTE, order="o1")])
    _, outputs = feed([obs(NOON, ObservationKind.FAILURE, order="o0")], state)
    assert [type(o) for o in outputs] == [LateObservation]


def test_failures_followed_by_a_success_and_not_the_reverse() -> None:
    _, outputs = feed(
        [
            obs(NOON, ObservationKind.FAILURE, order="o1"),
            obs(NOON + MINUTE, ObservationKind.SUCCESS, order="o2"),
            obs(NOON + 2 * MINUTE, order="o3"),
        ]
    )
    window = answers(outputs)[0].windows["1h"]
    assert (window.failures, window.successes, window.failure_then_success) == (1, 1, True)
    _, outputs = feed(
        [
            obs(NOON, ObservationKind.SUCCESS, order="o1"),
            obs(NOON + MINUTE, ObservationKind.FAILURE, order="o2"),
            obs(NOON + 2 * MINUTE, order="o3"),
        ]
    )
    assert answers(outputs)[0].windows["1h"].failure_then_success is False


def test_a_failure_and_a_success_in_the_same_millisecond_are_not_a_sequence() -> None:
    _, outputs = feed(
        [
            obs(NOON, ObservationKind.SUCCESS, order="o1"),
            obs(NOON, ObservationKind.FAILURE, order="o2"),
            obs(NOON + MINUTE, order="o3"),
        ]
    )
    assert answers(outputs)[0].windows["1h"].failure_then_success is False


def test_distinct_accounts_are_capped() -> None:
    events = [obs(NOON + i * SECOND, order=f"o{i}", account=f"a{i}") for i in range(60)]
    events.append(obs(NOON + 61 * SECOND, order="again", account="a0"))
    _, outputs = feed(events)
    counts = answers(outputs)
    assert counts[2].windows["24h"].distinct_accounts == 3
    assert counts[-1].windows["24h"].distinct_accounts == CONFIG.distinct_cap


def test_amounts_add_up_per_currency() -> None:
    _, outputs = feed(
        [
            obs(NOON, order="o1", amount=500, currency="CNY"),
            obs(NOON + SECOND, order="o2", amount=700, currency="USD"),
            obs(NOON + 2 * SECOND, order="o3", amount=900, currency="CNY"),
        ]
    )
    assert [c.windows["24h"].amount_minor for c in answers(outputs)] == [500, 700, 1400]


def test_state_stays_bounded_over_days_of_traffic() -> None:
    events = [
        obs(NOON + i * 7 * SECOND, order=f"o{i}", account=f"a{i % 80}") for i in range(40_000)
    ]
    state, _ = feed(events)
    for window in WINDOWS:
        retained = (window.length_ms + CONFIG.grace_ms) // window.bucket_ms + 2
        assert len(state.buckets[window.name]) <= retained
    assert len(json.dumps(state.to_dict())) < 200_000


def test_routing_key_names_the_dimension() -> None:
    assert obs(NOON, dimension=Dimension.PAYMENT_TOKEN).routing_key == "token:dev-1"


def test_observation_round_trips() -> None:
    observation = obs(NOON, ObservationKind.REFUND, promo="P1")
    assert Observation.from_dict(json.loads(json.dumps(observation.to_dict()))) == observation


def test_refund_of_a_promoted_order_is_flagged_once_per_key() -> None:
    user = Dimension.USER
    events = [
        obs(NOON, dimension=user, promo="P1"),
        obs(NOON + MINUTE, ObservationKind.SUCCESS, dimension=user, promo="P1"),
        obs(NOON + HOUR, ObservationKind.REFUND, dimension=user, promo="P1"),
        obs(NOON + HOUR + 1, ObservationKind.REFUND, dimension=user, promo="P1"),
        obs(NOON + 2 * HOUR, order="o2", dimension=user, promo="P2"),
    ]
    _, outputs = feed(events)
    flags = [o for o in outputs if isinstance(o, PromoRefundFlagged)]
    assert [(f.order_id, f.promo_id, f.refunded_redemptions) for f in flags] == [("o1", "P1", 1)]
    promo = answers(outputs)[-1].promo
    assert promo is not None and promo.refunded_redemptions == 1


def test_account_and_token_keys_keep_no_promotion_records() -> None:
    events = [
        obs(NOON, dimension=Dimension.PAYMENT_TOKEN, promo="P1"),
        obs(NOON + MINUTE, ObservationKind.SUCCESS, dimension=Dimension.PAYMENT_TOKEN, promo="P1"),
    ]
    state, outputs = feed(events)
    assert answers(outputs)[0].promo is None
    assert state.promo.redemptions == ()


# ---------------------------------------------------------------- the oracle

KINDS = (ObservationKind.ATTEMPT, ObservationKind.FAILURE, ObservationKind.SUCCESS)


def brute_force(history: Sequence[Observation], at: int, currency: str) -> dict[str, WindowCounts]:
    """Recount from the raw observations with the windows' own definition: a window of
    length L over buckets of width B at time t holds what fell in the L/B buckets ending
    with t's bucket."""
    result = {}
    for window in WINDOWS:
        width = window.bucket_ms
        end = at // width * width
        inside = [
            o for o in history if end - window.length_ms < o.occurred_at // width * width <= end
        ]
        failures = [o.occurred_at for o in inside if o.kind is ObservationKind.FAILURE]
        successes = [o.occurred_at for o in inside if o.kind is ObservationKind.SUCCESS]
        attempts = [o for o in inside if o.kind is ObservationKind.ATTEMPT]
        result[window.name] = WindowCounts(
            attempts=len(attempts),
            failures=len(failures),
            successes=len(successes),
            amount_minor=sum(o.amount_minor for o in attempts if o.currency == currency),
            distinct_accounts=min(len({o.account_id for o in inside}), CONFIG.distinct_cap),
            failure_then_success=any(f < s for f in failures for s in successes),
        )
    return result


steps = st.lists(
    st.tuples(
        st.one_of(
            st.integers(-CONFIG.grace_ms - MINUTE, 20 * SECOND),  # jitter, some too late
            st.integers(0, 2 * HOUR),
            st.integers(0, 30 * HOUR),
        ),
        st.sampled_from(KINDS),
        st.integers(0, 70),  # accounts, some beyond the distinct cap
        st.sampled_from(("CNY", "USD")),
        st.integers(0, 10_000),
        st.booleans(),  # store and reload the state before this step
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_counts_equal_a_brute_force_recount(moves: list[tuple]) -> None:
    state = VelocityState()
    reloaded_state = VelocityState()
    counted: list[Observation] = []
    at = NOON
    watermark: int | None = None
    for number, (delta, kind, account, currency, amount, reload) in enumerate(moves):
        at = max(0, at + delta)
        observation = obs(
            at, kind, order=f"o{number}", account=f"a{account}", amount=amount, currency=currency
        )
        previous_watermark = watermark
        late = previous_watermark is not None and at < previous_watermark - CONFIG.grace_ms
        watermark = at if watermark is None else max(watermark, at)
        if not late:
            counted.append(observation)

        state, outputs = observe(state, observation, CONFIG)
        if reload:
            reloaded_state = VelocityState.from_dict(
                json.loads(json.dumps(reloaded_state.to_dict()))
            )
        reloaded_state, reloaded_outputs = observe(reloaded_state, observation, CONFIG)

        assert reloaded_outputs == outputs
        reported = [o for o in outputs if isinstance(o, LateObservation)]
        if late:
            assert previous_watermark is not None
            assert reported == [LateObservation(observation, previous_watermark, CONFIG.grace_ms)]
        else:
            assert reported == []
        if kind is ObservationKind.ATTEMPT:
            (answer,) = answers(outputs)
            assert answer.late is late
            if not late:
                assert dict(answer.windows) == brute_force(counted, at, currency)


def test_the_velocity_evidence_names_each_answered_dimension_and_window() -> None:
    from streams.domain.risk.velocity import (
        WINDOW_NAMES,
        Dimension,
        DimensionCounts,
        WindowCounts,
        velocity_evidence,
    )

    counts = WindowCounts(4, 3, 1, 9000, 2, True)
    answers = {
        Dimension.DEVICE: DimensionCounts("o", Dimension.DEVICE, "d", dict.fromkeys(
            WINDOW_NAMES, counts), late=True),
        Dimension.USER: DimensionCounts("o", Dimension.USER, "u", dict.fromkeys(
            WINDOW_NAMES, counts)),
    }
    evidence = velocity_evidence(answers)
    # Dimensions in their fixed order, unanswered ones absent.
    assert list(evidence) == [f"velocity.{d}.{w}" for d in ("user", "device")
                              for w in WINDOW_NAMES]
    assert evidence["velocity.user.1h"] == (
        "attempts=4 failures=3 successes=1 amount=9000 accounts=2")
    assert evidence["velocity.device.24h"].endswith(" late")
    assert velocity_evidence({}) == {}
