"""The rule file: every default rule against a scenario made for it and a benign look-alike
(run through the whole pure pipeline), strict loading with line numbers, and scoring."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.domain.orders.inputs import OrderEvent, RiskDecision, RiskVerdict
from streams.domain.risk.fanin import Ready, RiskOrder
from streams.domain.risk.rules import (
    FAMILIES,
    Compare,
    RiskAssessment,
    RuleFileError,
    evaluate,
    parse_rules,
    score,
)
from streams.domain.risk.signals import SIGNALS, build_signals
from streams.domain.risk.velocity import Dimension, ObservationKind
from streams.rule_files import load_rules
from tests.unit.risk_population import (
    HOUR,
    MINUTE,
    RULES_PATH,
    Outcome,
    PipelineEvent,
    RiskPipeline,
    created_event,
)

DEFAULT_RULES = load_rules(RULES_PATH)
BASE = 1_741_057_200_000  # 2025-03-04T03:00:00Z, 11:00 in UTC+8
SECOND = 1000
DAY = 24 * HOUR
OLD = 400 * DAY


def m(minutes: float) -> int:
    return BASE + int(minutes * MINUTE)


def person(k: int | str) -> dict[str, str]:
    return {
        "user": f"u{k}",
        "account": f"a{k}",
        "device": f"d{k}",
        "ip": f"198.51.100.{k}",
        "token": f"t{k}",
    }


def order(
    n: int,
    at: int,
    who: int | str = 1,
    *,
    age_ms: int = OLD,
    verified: bool = True,
    amount: int = 5000,
    promo: str | None = None,
    bonus: int = 0,
    **changes: str,
) -> OrderEvent:
    facts = {**person(who), **changes}
    return created_event(
        f"o{n}",
        at,
        amount=amount,
        account_created_at=at - age_ms,
        verified=verified,
        promo=promo,
        bonus=500 if promo and not bonus else bonus,
        **facts,  # type: ignore[arg-type]
    )


def failed(n: int, at: int) -> Outcome:
    return Outcome(f"o{n}", ObservationKind.FAILURE, at)


def paid(n: int, at: int) -> Outcome:
    return Outcome(f"o{n}", ObservationKind.SUCCESS, at)


def refunded(n: int, at: int) -> Outcome:
    return Outcome(f"o{n}", ObservationKind.REFUND, at)


@dataclass(frozen=True)
class Scenario:
    """Events in event-time order; the last created order is the one judged."""

    events: tuple[PipelineEvent, ...]
    reasons: tuple[str, ...]
    decision: RiskDecision
    bonus_withheld: bool = False
    lost_answers: frozenset[Dimension] = field(default_factory=frozenset)


def run(scenario: Scenario) -> RiskAssessment:
    judged = [e for e in scenario.events if isinstance(e, OrderEvent)][-1].order_id
    pipeline = RiskPipeline(
        DEFAULT_RULES, lost_answers={(judged, d) for d in scenario.lost_answers}
    )
    pipeline.run(scenario.events)
    pipeline.advance_to(max(e.occurred_at for e in scenario.events) + DAY)
    return pipeline.assessments[judged]


def failing(numbers: range, token_of: object = None) -> list[PipelineEvent]:
    """Orders by user 1, two minutes apart, each declined 20 s later."""
    events: list[PipelineEvent] = []
    for n in numbers:
        token = {} if token_of is None else {"token": f"t-{n}"}
        events += [order(n, m(2 * n), **token), failed(n, m(2 * n) + 20 * SECOND)]
    return events


def promo_ring(size: int, *, age_ms: int, **shared: str) -> list[PipelineEvent]:
    """People 1..size each claiming promotion P and paying, ten minutes apart."""
    events: list[PipelineEvent] = []
    for k in range(1, size + 1):
        facts = {**person(k), **shared}
        events += [
            order(k, m(10 * k), k, age_ms=age_ms, promo="P", **facts),
            paid(k, m(10 * k) + 30 * SECOND),
        ]
    return events


ALLOW, STEP_UP, REVIEW, BLOCK = (
    RiskDecision.ALLOW,
    RiskDecision.STEP_UP,
    RiskDecision.REVIEW,
    RiskDecision.BLOCK,
)
NONE: tuple[str, ...] = ()

# rule id -> (the scenario it is made for, the benign look-alike)
SCENARIOS: dict[str, tuple[Scenario, Scenario]] = {
    "new_unverified_account": (
        Scenario(
            (order(1, m(0), age_ms=2 * HOUR, verified=False),), ("new_unverified_account",), ALLOW
        ),
        Scenario((order(1, m(0), age_ms=2 * HOUR, verified=True),), NONE, ALLOW),
    ),
    "device_shared_24h": (
        Scenario(
            tuple(order(k, m(120 * k), k, device="shared") for k in (1, 2, 3)),
            ("device_shared_24h",),
            STEP_UP,
        ),
        # A household: two people, one tablet, one of them twice.
        Scenario(
            tuple(
                order(n, m(120 * n), who, device="shared") for n, who in ((1, 1), (2, 2), (3, 1))
            ),
            NONE,
            ALLOW,
        ),
    ),
    "device_shared_1h": (
        Scenario(
            tuple(order(k, m(10 * k), k, device="shared") for k in (1, 2, 3)),
            ("device_shared_24h", "device_shared_1h"),
            BLOCK,
        ),
        Scenario(
            tuple(order(k, m(120 * k), k, device="shared") for k in (1, 2, 3)),
            ("device_shared_24h",),
            STEP_UP,
        ),
    ),
    "ip_crowded_1h": (
        Scenario(
            tuple(order(k, m(5 * k), k, ip="office") for k in range(1, 13)),
            ("ip_crowded_1h",),
            ALLOW,
        ),
        Scenario(tuple(order(k, m(5 * k), k, ip="office") for k in range(1, 12)), NONE, ALLOW),
    ),
    "ip_burst_1m": (
        Scenario(
            tuple(order(k, BASE + 5 * SECOND * k, k, ip="nat") for k in range(1, 11)),
            ("ip_burst_1m",),
            ALLOW,
        ),
        Scenario(
            tuple(order(k, BASE + 20 * SECOND * k, k, ip="nat") for k in range(1, 11)),
            NONE,
            ALLOW,
        ),
    ),
    "user_burst_1m": (
        Scenario(
            tuple(order(n, BASE + 10 * SECOND * n, token=f"t-{n}") for n in range(4)),
            ("user_burst_1m",),
            ALLOW,
        ),
        Scenario(
            tuple(order(n, BASE + 30 * SECOND * n, token=f"t-{n}") for n in range(4)),
            NONE,
            ALLOW,
        ),
    ),
    "account_attempts_1h": (
        Scenario(tuple(order(n, m(10 * n)) for n in range(6)), ("account_attempts_1h",), ALLOW),
        Scenario(tuple(order(n, m(10 * n)) for n in range(5)), NONE, ALLOW),
    ),
    "user_failed_then_paid_24h": (
        # Four cards declined, a fifth accepted, then the next order (spaced so the account
        # stays under six an hour).
        Scenario(
            (
                *[
                    e
                    for n in range(4)
                    for e in (
                        order(n, m(15 * n), token=f"t-{n}"),
                        failed(n, m(15 * n) + 30 * SECOND),
                    )
                ],
                order(4, m(60), token="t-4"),
                paid(4, m(60) + 30 * SECOND),
                order(5, m(75), token="t-5"),
            ),
            ("user_failed_then_paid_24h",),
            ALLOW,
        ),
        Scenario(
            (
                *[
                    e
                    for n in range(3)
                    for e in (
                        order(n, m(15 * n), token=f"t-{n}"),
                        failed(n, m(15 * n) + 30 * SECOND),
                    )
                ],
                order(3, m(45), token="t-3"),
                paid(3, m(45) + 30 * SECOND),
                order(4, m(60), token="t-4"),
            ),
            NONE,
            ALLOW,
        ),
    ),
    "night_hours_utc": (
        Scenario((order(1, BASE + 16 * HOUR + 30 * MINUTE),), ("night_hours_utc",), ALLOW),
        Scenario((order(1, BASE + 19 * HOUR + 30 * MINUTE),), NONE, ALLOW),
    ),
    "token_card_testing_1h": (
        Scenario((*failing(range(3)), order(3, m(6))), ("token_card_testing_1h",), STEP_UP),
        Scenario((*failing(range(2)), order(2, m(4))), NONE, ALLOW),
    ),
    "token_failed_then_paid_24h": (
        # The card is accepted after three declines; the next order comes two hours later,
        # when the hourly failures have slid out.
        Scenario(
            (*failing(range(3)), order(3, m(6)), paid(3, m(6) + 20 * SECOND), order(4, m(130))),
            ("token_failed_then_paid_24h",),
            STEP_UP,
        ),
        Scenario(
            (*failing(range(2)), order(2, m(4)), paid(2, m(4) + 20 * SECOND), order(3, m(130))),
            NONE,
            ALLOW,
        ),
    ),
    "token_shared_24h": (
        Scenario(
            tuple(order(k, m(120 * k), k, token="card") for k in (1, 2, 3)),
            ("token_shared_24h",),
            STEP_UP,
        ),
        # A couple sharing a card.
        Scenario(tuple(order(k, m(120 * k), k, token="card") for k in (1, 2)), NONE, ALLOW),
    ),
    "token_burst_1m": (
        Scenario(
            tuple(order(n, BASE + 15 * SECOND * n) for n in range(3)), ("token_burst_1m",), ALLOW
        ),
        Scenario(tuple(order(n, BASE + 60 * SECOND * n) for n in range(3)), NONE, ALLOW),
    ),
    "unverified_daily_spend": (
        Scenario(
            tuple(order(n, m(120 * n), verified=False, amount=100_000) for n in range(3)),
            ("unverified_daily_spend",),
            STEP_UP,
        ),
        Scenario(
            tuple(order(n, m(120 * n), verified=True, amount=100_000) for n in range(3)),
            NONE,
            ALLOW,
        ),
    ),
    "new_account_high_amount": (
        Scenario(
            (order(1, m(0), age_ms=2 * DAY, amount=100_000),), ("new_account_high_amount",), STEP_UP
        ),
        Scenario((order(1, m(0), age_ms=3 * DAY, amount=100_000),), NONE, ALLOW),
    ),
    "promo_user_repeat": (
        Scenario(
            (order(1, m(0), promo="P"), paid(1, m(0.5)), order(2, m(60), promo="P")),
            ("promo_user_repeat",),
            STEP_UP,
        ),
        # The first payment was declined, so the promotion was never redeemed.
        Scenario(
            (order(1, m(0), promo="P"), failed(1, m(0.5)), order(2, m(60), promo="P")), NONE, ALLOW
        ),
    ),
    "promo_device_farming": (
        # Three people topping up one family account from one tablet, each with the bonus.
        Scenario(
            tuple(promo_ring(3, age_ms=OLD, device="tablet", account="a-family"))[:-1],
            ("promo_device_farming",),
            STEP_UP,
        ),
        Scenario(
            tuple(promo_ring(2, age_ms=OLD, device="tablet", account="a-family"))[:-1],
            NONE,
            ALLOW,
        ),
    ),
    "promo_ip_farming": (
        Scenario(
            (
                *promo_ring(5, age_ms=3 * DAY, ip="proxy"),
                order(6, m(60), 6, age_ms=3 * DAY, promo="P", ip="proxy"),
            ),
            ("promo_ip_farming",),
            STEP_UP,
        ),
        # An established customer in the same office takes the same promotion.
        Scenario(
            (
                *promo_ring(5, age_ms=3 * DAY, ip="proxy"),
                order(6, m(60), 6, age_ms=OLD, promo="P", ip="proxy"),
            ),
            NONE,
            ALLOW,
        ),
    ),
    "promo_refund_abuse": (
        Scenario(
            (
                order(1, m(0), promo="P"),
                paid(1, m(0.5)),
                refunded(1, m(60)),
                order(2, m(120), promo="Q"),
            ),
            ("promo_refund_abuse",),
            ALLOW,
            bonus_withheld=True,
        ),
        # The refunded top-up had no promotion: an ordinary refund.
        Scenario(
            (order(1, m(0)), paid(1, m(0.5)), refunded(1, m(60)), order(2, m(120), promo="Q")),
            NONE,
            ALLOW,
        ),
    ),
    "velocity_incomplete": (
        Scenario(
            (order(1, m(0)),),
            ("velocity_incomplete",),
            ALLOW,
            lost_answers=frozenset({Dimension.PAYMENT_TOKEN}),
        ),
        Scenario((order(1, m(0)),), NONE, ALLOW),
    ),
}


@pytest.mark.parametrize("rule_id", DEFAULT_RULES.rule_ids)
def test_rule_fires_on_its_scenario_and_not_on_a_look_alike(rule_id: str) -> None:
    if rule_id not in SCENARIOS:
        pytest.fail(f"rule {rule_id} in {RULES_PATH.name} has no scenario in SCENARIOS")
    for scenario in SCENARIOS[rule_id]:
        assessment = run(scenario)
        assert (assessment.reasons, assessment.decision, assessment.bonus_withheld) == (
            scenario.reasons,
            scenario.decision,
            scenario.bonus_withheld,
        ), assessment
        assert assessment.rules_version == DEFAULT_RULES.rules_version
    assert rule_id in SCENARIOS[rule_id][0].reasons
    assert rule_id not in SCENARIOS[rule_id][1].reasons


def test_every_scenario_belongs_to_a_rule_in_the_file() -> None:
    assert set(SCENARIOS) <= set(DEFAULT_RULES.rule_ids)


def test_default_file_covers_every_signal_family() -> None:
    assert {rule.family for rule in DEFAULT_RULES.rules} == FAMILIES
    assert DEFAULT_RULES.rules_version.startswith("2025.1+")


# ---------------------------------------------------------------- malformed files

VALID = """\
version: "t1"
thresholds:
  step_up: 40
  review: 65
  block: 75
rules:
  - id: card_testing
    family: payment_method
    points: 50
    when:
      all:
        - {signal: velocity.token.1h.failures, op: ">=", value: 3}
        - {signal: identity.user_verified, op: "==", value: false}
"""


def load_text(tmp_path: Path, text: str) -> RuleFileError:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RuleFileError) as caught:
        load_rules(path)
    error = caught.value
    assert str(error).startswith(f"{path}:{error.line}: ")
    return error


def test_the_valid_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(VALID)
    rules = load_rules(path)
    assert rules.rule_ids == ("card_testing",)


@pytest.mark.parametrize(
    ("old", "new", "line", "problem"),
    [
        ("    points: 50\n", "    points: [50\n", 10, "flow sequence started on line 9"),
        ("velocity.token.1h.failures", "velocity.token.1h.failurez", 12, "unknown signal"),
        ('op: ">="', 'op: "=>"', 12, "unknown op '=>'"),
        ("    points: 50\n", "", 7, "missing points"),
        ("  review: 65\n", "  review: 80\n", 5, "thresholds must rise"),
        ("  step_up: 40\n", "  step_up: 70\n", 4, "thresholds must rise"),
        ("value: 3}", 'value: "3"}', 12, "must be a whole number"),
        ("value: false}", "value: 0}", 13, "must be true/false"),
        ('op: "=="', 'op: "<"', 13, "does not apply"),
        ("    points: 50\n", "    point: 50\n", 9, "unknown key 'point'"),
        ("    points: 50\n", "    points: 500\n", 9, "within -100..100"),
        ("    family: payment_method\n", "    family: payments\n", 8, "unknown family"),
        ("      all:\n", "      every:\n", 11, "unknown key 'every'"),
        ('version: "t1"\n', "", 1, "missing version"),
        ("  block: 75\n", "  block: 75\n  block: 76\n", 6, "'block' twice"),
        ("id: card_testing", "id: promo_bonus_withheld", 7, "reserved"),
    ],
)
def test_malformed_files_name_the_line_and_the_problem(
    tmp_path: Path, old: str, new: str, line: int, problem: str
) -> None:
    assert old in VALID
    error = load_text(tmp_path, VALID.replace(old, new, 1))
    assert (error.line, problem in error.problem) == (line, True), str(error)


def test_a_duplicate_rule_id_names_the_second(tmp_path: Path) -> None:
    rule = VALID[VALID.index("  - id:") :]
    error = load_text(tmp_path, VALID + rule)
    assert error.line == 14 and "used twice" in error.problem


def test_an_empty_or_missing_file_fails_too(tmp_path: Path) -> None:
    assert load_text(tmp_path, "").problem == "the rule file is empty"
    with pytest.raises(RuleFileError, match="cannot read"):
        load_rules(tmp_path / "absent.yaml")


def test_in_needs_a_list_of_the_signal_type() -> None:
    text = VALID.replace(
        '{signal: identity.user_verified, op: "==", value: false}',
        "{signal: order.currency, op: in, value: [CNY, 3]}",
    )
    with pytest.raises(RuleFileError, match="must be a string") as caught:
        parse_rules(text, "inline.yaml")
    assert caught.value.line == 13


# ---------------------------------------------------------------- scoring


def rule_file(points: list[int], thresholds: str = "") -> str:
    rules = "".join(
        f"  - id: r{i}\n    family: behaviour\n    points: {p}\n"
        f"    when: {{signal: order.hour_utc, op: '>=', value: 0}}\n"
        for i, p in enumerate(points)
    )
    return f"version: v\n{thresholds}rules:\n{rules}"


def signals_for(**overrides: object) -> dict[str, object]:
    order = RiskOrder("o1", "a1", "u1", BASE, 5000, "CNY")
    signals = build_signals(Ready(order, {}, frozenset(), timed_out=False, decided_at=BASE))
    signals.update(overrides)
    return signals


@pytest.mark.parametrize(
    ("points", "expected_score", "decision"),
    [
        ([39], 39, ALLOW),
        ([20, 20], 40, STEP_UP),
        ([65], 65, REVIEW),
        ([75], 75, BLOCK),
        ([80, 80], 100, BLOCK),
        ([30, -50], 0, ALLOW),
    ],
)
def test_points_add_up_clamped_and_meet_the_thresholds(
    points: list[int], expected_score: int, decision: RiskDecision
) -> None:
    assessment = score(parse_rules(rule_file(points)), signals_for())
    assert (assessment.score, assessment.decision) == (expected_score, decision)
    assert assessment.reasons == tuple(f"r{i}" for i in range(len(points)))


def test_thresholds_are_configurable() -> None:
    rules = parse_rules(rule_file([30], "thresholds: {step_up: 10, review: 20, block: 90}\n"))
    assert score(rules, signals_for()).decision is REVIEW


def test_rules_version_changes_with_any_edit() -> None:
    text = rule_file([10])
    first, again = parse_rules(text), parse_rules(text)
    edited = parse_rules(text + "# a comment\n")
    assert first.rules_version == again.rules_version
    assert first.rules_version.startswith("v+") and edited.rules_version.startswith("v+")
    assert edited.rules_version != first.rules_version


def test_unknown_signals_never_fire_and_absent_ones_are_a_bug() -> None:
    rule = Compare("velocity.device.1h.attempts", ">=", 0)
    assert evaluate(rule, signals_for()) is False  # the order carries no device
    with pytest.raises(ValueError, match="lack"):
        evaluate(rule, {})


def test_build_signals_fills_the_whole_catalog_with_its_types() -> None:
    signals = signals_for()
    assert set(signals) == set(SIGNALS)
    for name, value in signals.items():
        assert value is None or type(value) is SIGNALS[name].type, name


def test_assessment_becomes_the_contract_record() -> None:
    assessment = RiskAssessment(STEP_UP, 45, ("a", "b"), "v+1234abcd")
    assert assessment.to_record("o1", "a1", BASE) == {
        "order_id": "o1",
        "account_id": "a1",
        "decision": "STEP_UP",
        "score": 45,
        "reasons": ["a", "b"],
        "rules_version": "v+1234abcd",
        "decided_at": BASE,
    }


def test_a_withheld_bonus_travels_as_a_reserved_reason_on_the_decision() -> None:
    assessment = RiskAssessment(RiskDecision.ALLOW, 0, ("device_shared_24h",), "v1",
                                bonus_withheld=True)
    record = assessment.to_record("o-1", "acct-1", 5)
    assert record["reasons"] == ["device_shared_24h", "promo_bonus_withheld"]
    assert RiskVerdict.from_record(record).bonus_withheld
