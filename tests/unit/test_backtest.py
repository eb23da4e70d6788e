"""Backtest: the generated risk population replayed with tightened and loosened rules,
the report checked against a direct computation with the population test's own pipeline."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from streams.domain.orders.inputs import OrderEvent
from streams.domain.risk.rules import parse_rules
from streams.ops.backtest import Outcome, Recorded, compare
from streams.rule_files import load_rules
from tests.unit.risk_population import RULES_PATH, RiskPipeline, generate

CURRENT = load_rules(RULES_PATH)


def variant(step_up: int, review: int, block: int, drop: str | None = None):
    data = yaml.safe_load(RULES_PATH.read_text())
    data["version"] = f"backtest-{step_up}-{review}-{block}"
    data["thresholds"] = {"step_up": step_up, "review": review, "block": block}
    data["rules"] = [rule for rule in data["rules"] if rule["id"] != drop]
    return parse_rules(yaml.safe_dump(data), "variant")


@pytest.fixture(scope="module")
def population():
    return generate(users=300)


def as_recorded(population) -> Recorded:
    orders = [e for e in population.events if isinstance(e, OrderEvent)]
    outcomes = [Outcome(e.order_id, e.kind, e.occurred_at, f"{e.order_id}|{e.kind}|{i}")
                for i, e in enumerate(population.events) if not isinstance(e, OrderEvent)]
    return Recorded(orders, outcomes, {}, {}, {})


@pytest.mark.parametrize("new_rules", [
    variant(30, 55, 65),  # tightened
    variant(55, 80, 90, drop="device_shared_1h"),  # loosened
], ids=["tightened", "loosened"])
def test_the_matrix_matches_a_direct_computation(population, new_rules):
    report = compare(as_recorded(population), CURRENT, new_rules)

    direct = {}
    for name, rules in (("current", CURRENT), ("new", new_rules)):
        pipeline = RiskPipeline(rules)
        pipeline.run(population.events)
        direct[name] = pipeline.assessments
    matrix: dict[str, Counter] = {}
    hits: dict[str, Counter] = {}
    for order_id, old in direct["current"].items():
        fresh = direct["new"][order_id]
        matrix.setdefault(old.decision.value, Counter())[fresh.decision.value] += 1
        for side, assessment in (("current", old), ("new", fresh)):
            for reason in assessment.reasons:
                hits.setdefault(reason, Counter())[side] += 1
    assert report.matrix == {k: dict(v) for k, v in matrix.items()}
    assert report.orders == len(direct["current"])
    changed = {o for o, a in direct["current"].items() if a.decision != direct["new"][o].decision}
    assert {c["order_id"] for c in report.changed} == changed
    assert changed, "the variant must change some decisions, or the test proves nothing"
    assert report.rule_hits == {
        rule: {"current": c["current"], "new": c["new"]}
        for rule, c in hits.items() if c["current"] != c["new"]}


def test_since_and_until_bound_the_orders_reported(population):
    inputs = as_recorded(population)
    times = sorted(o.occurred_at for o in inputs.orders)
    since, until = times[len(times) // 3], times[2 * len(times) // 3]
    report = compare(inputs, CURRENT, variant(30, 55, 65), since, until)
    assert report.orders == sum(1 for t in times if since <= t < until)
