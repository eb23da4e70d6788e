"""Risk rules as data: a YAML rule file, validated strictly, and the scoring over signals.

The file (read by `streams/rule_files.py`: the domain does no I/O; path TOPUP_RISK_RULES)::

    version: "2025-06-01"
    thresholds: {step_up: 40, review: 65, block: 75}   # optional; these are the defaults
    rules:
      - id: token_card_testing_1h
        family: payment_method
        description: many failed payments on one card within an hour
        points: 50
        when: {signal: velocity.token.1h.failures, op: ">=", value: 3}

A condition is a comparison `{signal, op, value}` (ops: == != < <= > >= in) or a
combination `{all: [...]}` / `{any: [...]}`. Nothing is evaluated as code.

Every problem fails the load with `RuleFileError` naming the file, the line and the
problem: bad YAML, unknown keys, unknown signals, unknown ops, values of the wrong type,
missing points, duplicate ids, thresholds out of order. A service that starts with a
rule file therefore decides with exactly what the file says.

The score is the sum of the points of every rule that fires, clamped to 0..100; the
thresholds map it to a decision (after Stripe Radar: 65 elevated, 75 highest). Each
decision is stamped with `rules_version`: the file's `version` plus a hash of its bytes,
so an edited file never passes for the old one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, NoReturn

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from streams.domain.orders.inputs import BONUS_WITHHELD_REASON, RiskDecision
from streams.domain.risk.signals import SIGNALS, SignalValue

FAMILIES = frozenset(
    {
        "identity",
        "device",
        "network",
        "behaviour",
        "payment_method",
        "amount",
        "promotion",
        "fanin",
    }
)
_RULE_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MAX_POINTS = 100

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda left, right: left == right,
    "!=": lambda left, right: left != right,
    "<": lambda left, right: left < right,
    "<=": lambda left, right: left <= right,
    ">": lambda left, right: left > right,
    ">=": lambda left, right: left >= right,
    "in": lambda left, right: left in right,
}
# Ordering a flag or a currency code is meaningless, so it is refused at load.
_OPS_BY_TYPE: dict[type, frozenset[str]] = {
    bool: frozenset({"==", "!="}),
    int: frozenset(_COMPARE),
    str: frozenset({"==", "!=", "in"}),
}


class RuleFileError(ValueError):
    """The rule file is unusable; the message reads `<file>:<line>: <problem>`."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Compare:
    signal: str
    op: str
    value: SignalValue | tuple[SignalValue, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    conditions: tuple[Condition, ...]


Condition = Compare | AllOf | AnyOf


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    family: str
    description: str
    points: int
    when: Condition


@dataclass(frozen=True, slots=True)
class Thresholds:
    step_up: int = 40
    review: int = 65
    block: int = 75

    def decision(self, score: int) -> RiskDecision:
        if score >= self.block:
            return RiskDecision.BLOCK
        if score >= self.review:
            return RiskDecision.REVIEW
        if score >= self.step_up:
            return RiskDecision.STEP_UP
        return RiskDecision.ALLOW


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules_version: str
    thresholds: Thresholds
    rules: tuple[Rule, ...]
    source: str

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(rule.id for rule in self.rules)


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    decision: RiskDecision
    score: int
    reasons: tuple[str, ...]  # ids of the rules that fired, in file order
    rules_version: str
    # The promotion module's verdict (see promotions.py), passed through from the signals
    # so the order domain can credit the order without its bonus.
    bonus_withheld: bool = False

    def to_record(self, order_id: str, account_id: str, decided_at: int) -> dict[str, Any]:
        """The `topup.risk-decisions` record of the contract."""
        return {
            "order_id": order_id,
            "account_id": account_id,
            "decision": self.decision.value,
            "score": self.score,
            "reasons": [*self.reasons, *([BONUS_WITHHELD_REASON] if self.bonus_withheld else [])],
            "rules_version": self.rules_version,
            "decided_at": decided_at,
        }


def evaluate(condition: Condition, signals: Mapping[str, SignalValue]) -> bool:
    """Whether the condition holds. A comparison with an unknown (None) signal is false."""
    if isinstance(condition, AllOf):
        return all(evaluate(part, signals) for part in condition.conditions)
    if isinstance(condition, AnyOf):
        return any(evaluate(part, signals) for part in condition.conditions)
    try:
        actual = signals[condition.signal]
    except KeyError:
        raise ValueError(
            f"signals lack {condition.signal!r}; build them with build_signals"
        ) from None
    return actual is not None and _COMPARE[condition.op](actual, condition.value)


def score(rules: RuleSet, signals: Mapping[str, SignalValue]) -> RiskAssessment:
    """Sum the points of the rules that fire (clamped to 0..100) and map it to a decision."""
    fired = [rule for rule in rules.rules if evaluate(rule.when, signals)]
    total = max(0, min(_MAX_POINTS, sum(rule.points for rule in fired)))
    return RiskAssessment(
        decision=rules.thresholds.decision(total),
        score=total,
        reasons=tuple(rule.id for rule in fired),
        rules_version=rules.rules_version,
        bonus_withheld=signals.get("promo.bonus_withheld") is True,
    )


def parse_rules(text: str | bytes, source: str = "<rules>") -> RuleSet:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return _Parser(source).rule_set(data)


_TYPE_NAMES = {bool: "true/false", int: "a whole number", str: "a string"}


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.constructor = SafeConstructor()

    def fail(self, node: Node, problem: str) -> NoReturn:
        raise RuleFileError(self.source, node.start_mark.line + 1, problem)

    def rule_set(self, data: bytes) -> RuleSet:
        try:
            root = yaml.compose(data, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or str(exc)
            if exc.context and exc.context_mark:
                problem += f" ({exc.context} started on line {exc.context_mark.line + 1})"
            line = mark.line + 1 if mark else 1
            raise RuleFileError(self.source, line, f"not valid YAML: {problem}") from None
        except yaml.YAMLError as exc:  # bytes that are not text: no line to point at
            raise RuleFileError(self.source, 1, f"not valid YAML: {exc}") from None
        if root is None:
            raise RuleFileError(self.source, 1, "the rule file is empty")
        top = self.mapping(
            root, "the rule file", required={"version", "rules"}, optional={"thresholds"}
        )
        version = self.scalar(top["version"], "version", (str, int))
        if str(version).strip() == "":
            self.fail(top["version"], "version must not be empty")
        thresholds = self.thresholds(top["thresholds"]) if "thresholds" in top else Thresholds()
        rules = self.rules(top["rules"])
        digest = hashlib.sha256(data).hexdigest()[:8]
        return RuleSet(f"{version}+{digest}", thresholds, rules, self.source)

    def mapping(
        self, node: Node, what: str, *, required: Set[str], optional: Set[str] = frozenset()
    ) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what} must be a mapping")
        entries: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, f"a key of {what}", (str,))
            if key in entries:
                self.fail(key_node, f"{what} has {key!r} twice")
            if key not in required | optional:
                allowed = ", ".join(sorted(required | optional))
                self.fail(key_node, f"unknown key {key!r} in {what} (allowed: {allowed})")
            entries[key] = value_node
        missing = sorted(required - set(entries))
        if missing:
            self.fail(node, f"{what} is missing {', '.join(missing)}")
        return entries

    def scalar(self, node: Node, what: str, types: tuple[type, ...]) -> Any:
        if not isinstance(node, ScalarNode):
            self.fail(node, f"{what} must be a single value")
        try:
            value = self.constructor.construct_object(node)
        except yaml.MarkedYAMLError as exc:  # e.g. an unknown !tag
            self.fail(node, f"{what}: {exc.problem}")
        # bool is an int in Python, but `points: yes` is a mistake, not 1 point.
        if type(value) not in types:
            expected = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            self.fail(node, f"{what} must be {expected}, got {value!r}")
        return value

    def thresholds(self, node: Node) -> Thresholds:
        names = ("step_up", "review", "block")
        entries = self.mapping(node, "thresholds", required=set(), optional=set(names))
        defaults = Thresholds()
        values = {name: getattr(defaults, name) for name in names}
        for name, value_node in entries.items():
            values[name] = self.scalar(value_node, f"thresholds.{name}", (int,))
            if not 1 <= values[name] <= _MAX_POINTS:
                self.fail(value_node, f"thresholds.{name} must be within 1..{_MAX_POINTS}")
        for lower, higher in pairwise(names):
            if values[lower] >= values[higher]:
                culprit = entries.get(higher) or entries.get(lower) or node
                self.fail(
                    culprit,
                    f"thresholds must rise step_up < review < block, got {lower}="
                    f"{values[lower]} and {higher}={values[higher]}",
                )
        return Thresholds(**values)

    def rules(self, node: Node) -> tuple[Rule, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            self.fail(node, "rules must be a non-empty list")
        rules: list[Rule] = []
        seen: set[str] = set()
        for rule_node in node.value:
            rule = self.rule(rule_node)
            if rule.id in seen:
                self.fail(rule_node, f"rule id {rule.id!r} is used twice")
            seen.add(rule.id)
            rules.append(rule)
        return tuple(rules)

    def rule(self, node: Node) -> Rule:
        entries = self.mapping(
            node, "a rule", required={"id", "family", "points", "when"}, optional={"description"}
        )
        rule_id = self.scalar(entries["id"], "id", (str,))
        if not _RULE_ID.fullmatch(rule_id):
            self.fail(entries["id"], f"rule id {rule_id!r} must be lower_snake_case, at most 64")
        if rule_id == BONUS_WITHHELD_REASON:
            self.fail(entries["id"], f"rule id {rule_id!r} is reserved for the promotion verdict")
        family = self.scalar(entries["family"], f"{rule_id}.family", (str,))
        if family not in FAMILIES:
            self.fail(entries["family"], f"unknown family {family!r} (one of {sorted(FAMILIES)})")
        points = self.scalar(entries["points"], f"{rule_id}.points", (int,))
        if not -_MAX_POINTS <= points <= _MAX_POINTS:
            self.fail(entries["points"], f"{rule_id}.points must be within -100..100")
        description = ""
        if "description" in entries:
            description = self.scalar(entries["description"], f"{rule_id}.description", (str,))
        return Rule(rule_id, family, description, points, self.condition(entries["when"], rule_id))

    def condition(self, node: Node, rule_id: str) -> Condition:
        if isinstance(node, MappingNode) and any(
            isinstance(key, ScalarNode) and key.value in ("all", "any") for key, _ in node.value
        ):
            entries = self.mapping(
                node, f"a condition of {rule_id}", required=set(), optional={"all", "any"}
            )
            if len(entries) != 1:
                self.fail(node, "a combination is either all: or any:, not both")
            ((combinator, parts_node),) = entries.items()
            if not isinstance(parts_node, SequenceNode) or not parts_node.value:
                self.fail(parts_node, f"{combinator}: needs a non-empty list of conditions")
            parts = tuple(self.condition(part, rule_id) for part in parts_node.value)
            return AllOf(parts) if combinator == "all" else AnyOf(parts)
        return self.compare(node, rule_id)

    def compare(self, node: Node, rule_id: str) -> Compare:
        what = f"a condition of {rule_id}"
        entries = self.mapping(node, what, required={"signal", "op", "value"})
        name = self.scalar(entries["signal"], "signal", (str,))
        spec = SIGNALS.get(name)
        if spec is None:
            self.fail(entries["signal"], f"unknown signal {name!r}")
        op = self.scalar(entries["op"], "op", (str,))
        if op not in _COMPARE:
            self.fail(entries["op"], f"unknown op {op!r} (one of {', '.join(_COMPARE)})")
        if op not in _OPS_BY_TYPE[spec.type]:
            self.fail(entries["op"], f"op {op!r} does not apply to {name} ({spec.type.__name__})")
        value_node = entries["value"]
        if op == "in":
            if not isinstance(value_node, SequenceNode) or not value_node.value:
                self.fail(value_node, "op 'in' needs a non-empty list of values")
            items = tuple(
                self.scalar(item, f"a value for {name}", (spec.type,)) for item in value_node.value
            )
            return Compare(name, op, items)
        return Compare(name, op, self.scalar(value_node, f"the value for {name}", (spec.type,)))
