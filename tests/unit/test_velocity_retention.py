"""Velocity rows are removed once no window or promotion period can see them, in event
time, with a tombstone: decisions for traffic within the retirement slack stay exactly
what they were with every row kept, and the number of rows follows the live window, not
the age of the system."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams import topics
from streams.codecs import default_catalog
from streams.domain.common.payments import PaymentKind
from streams.domain.orders.inputs import OrderEvent
from streams.domain.risk.fanin import RiskOrder, fan_out
from streams.domain.risk.promotions import PromoConfig
from streams.domain.risk.velocity import (
    WINDOWS,
    Dimension,
    DimensionCounts,
    Observation,
    ObservationKind,
    VelocityConfig,
    VelocityState,
    observe,
    retire_at,
)
from streams.metrics import Metrics
from streams.rule_files import load_rules
from streams.runtime.context import Context, Record, Send, SizeLimits
from streams.runtime.gathered import Gatherer
from streams.runtime.stage import Stage
from streams.runtime.store import PartitionStore, encode_value
from streams.stages import DEFAULT_RISK_RULES, risk
from streams.stages.velocity_retention import RETIRES_PER_RECORD
from tests.builders import DIRECTORY, order_event, payment_event

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
T0 = 1_795_000_000_000 - 1_795_000_000_000 % DAY  # midnight UTC, far from the night rules
SLACK = HOUR
NEVER = 100 * 365 * DAY  # a slack no test reaches: every row is kept
CATALOG = default_catalog()


class Partition:
    """Partition 0 of one stage over real local stores, committing after every input."""

    def __init__(self, stage: Stage, path: Path) -> None:
        self.stage = stage
        self.stores = {spec.name: PartitionStore(path / spec.name, None, spec.name)
                       for spec in stage.stores}
        self.tombstones: list[str] = []

    def run(self, topic: str, item: Any) -> list[Send]:
        ctx = Context(Record(topic, 0, 0, None, None, 0, []), CATALOG, Metrics(), self.stores,
                      {name: {} for name in self.stores}, directory=DIRECTORY)
        self.stage.handle(ctx, item)
        for name, layer in ctx.layers.items():
            self.stores[name].write((key.encode(), encode_value(value))
                                    for key, value in layer.items())
            self.stores[name].committed(layer)
            self.tombstones += [key for key, value in layer.items() if value is None
                                and not key.startswith("~")]
        gatherer = Gatherer()
        gatherer.add(ctx.gathered)
        return ctx.sends + gatherer.sends(SizeLimits())

    def rows(self, store: str) -> set[str]:
        return {key.decode() for key, _ in self.stores[store].raw_items()
                if not key.startswith(b"~")}

    def logical_bytes(self, store: str) -> int:
        return sum(len(key) + len(value) for key, value in self.stores[store].raw_items())


class VelocityPartition(Partition):
    def __init__(self, path: Path, slack_ms: int, config: VelocityConfig | None = None,
                 metrics: Metrics | None = None) -> None:
        super().__init__(risk.velocity_stage(metrics or Metrics(), config, slack_ms,
                                               partitions=1), path)

    def observe(self, observation: Observation) -> list[DimensionCounts]:
        return [answer for send in self.run(topics.RISK_OBSERVATIONS, (observation,))
                if send.topic == topics.RISK_ANSWERS
                for answer in topics.RISK_ANSWERS_TOPIC.decode(send.value)]

    def row_keys(self) -> set[str]:
        return self.rows(risk.VELOCITY.name)


@dataclass
class Pipeline:
    """The risk stage and the velocity stage wired through their internal topics, as the
    broker would, one partition each: an order's decision comes back before the next."""

    path: Path
    slack_ms: int
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: list[DimensionCounts] = field(default_factory=list)

    def __post_init__(self) -> None:
        rules = load_rules(DEFAULT_RISK_RULES)
        self.risk = Partition(risk.risk_stage(CATALOG, rules, Metrics(), partitions=1),
                              self.path / "risk")
        self.velocity = VelocityPartition(self.path / "velocity", self.slack_ms)

    def _route(self, topic: str, item: Any) -> None:
        queue: deque[tuple[str, Any]] = deque([(topic, item)])
        while queue:
            topic, item = queue.popleft()
            partition = self.velocity if topic == topics.RISK_OBSERVATIONS else self.risk
            for send in partition.run(topic, item):
                if send.topic == topics.RISK_OBSERVATIONS:
                    queue.append((send.topic,
                                  topics.RISK_OBSERVATIONS_TOPIC.decode(send.value)))
                elif send.topic == topics.RISK_ANSWERS:
                    answers = topics.RISK_ANSWERS_TOPIC.decode(send.value)
                    self.answers += answers
                    queue.append((send.topic, answers))
                elif send.topic == topics.RISK_DECISIONS:
                    decision = CATALOG.decode("RiskDecision", send.value or b"")
                    self.decisions[decision["order_id"]] = decision

    def order(self, order_id: str, at: int, **fields: Any) -> dict[str, Any]:
        self._route(topics.ORDERS, OrderEvent.from_record(order_event(order_id, at=at,
                                                                      **fields)))
        return self.decisions[order_id]

    def payment(self, order_id: str, kind: PaymentKind, at: int) -> None:
        self._route(topics.PAYMENTS, payment_event(order_id, kind, at=at))


def _party(name: str) -> dict[str, str]:
    return {"user_id": f"u-{name}", "account_id": f"a-{name}", "device_id": f"d-{name}",
            "ip": f"ip-{name}", "payment_token": f"tok-{name}"}


def _background(pipeline: Pipeline, start: int, end: int, every_ms: int) -> None:
    """Strangers moving the partition's event time on, as the rest of the traffic does."""
    for at in range(start, end, every_ms):
        pipeline.order(f"bg-{at}", at, **_party(f"bg-{at}"))


def _script(pipeline: Pipeline) -> dict[str, list[str]]:
    """Traffic across the 1m and 24h windows' edges and past every row's removal; returns
    the reasons of the orders the test names."""
    reasons: dict[str, list[str]] = {}

    def order(order_id: str, at: int, **fields: Any) -> None:
        reasons[order_id] = pipeline.order(order_id, at, **fields)["reasons"]

    burst = _party("burst")
    for n in range(4):  # four orders in a minute from one user and one card
        order(f"burst-{n}", T0 + n * 10_000, **burst)
    # Three accounts fail on one card within the hour: the card-testing signature.
    for n in range(3):
        order(f"test-{n}", T0 + HOUR + n * MINUTE,
              **{**_party(f"tester-{n}"), "payment_token": "tok-tested"})
        pipeline.payment(f"test-{n}", PaymentKind.PAYMENT_FAILED, T0 + HOUR + n * MINUTE + 1)
    order("test-3", T0 + HOUR + 10 * MINUTE,
          **{**_party("tester-3"), "payment_token": "tok-tested"})
    _background(pipeline, T0 + 2 * HOUR, T0 + 20 * HOUR, HOUR)
    # The tested card pays (20 h), then is used again inside the day of its failures
    # (23 h) and after it (26 h).
    order("paid", T0 + 20 * HOUR, **{**_party("payer"), "payment_token": "tok-tested"})
    pipeline.payment("paid", PaymentKind.PAYMENT_SUCCEEDED, T0 + 20 * HOUR + 1)
    _background(pipeline, T0 + 20 * HOUR + 30 * MINUTE, T0 + 23 * HOUR, HOUR)
    order("inside-day", T0 + 23 * HOUR, **{**_party("late-1"), "payment_token": "tok-tested"})
    _background(pipeline, T0 + 24 * HOUR, T0 + 26 * HOUR + 30 * MINUTE, HOUR)
    order("after-day", T0 + 26 * HOUR + 30 * MINUTE,
          **{**_party("late-2"), "payment_token": "tok-tested"})
    # A promoted top-up, paid then refunded: the user is flagged for the refund memory.
    promo = {**_party("promo"), "promo_id": "WELCOME", "promo_bonus_minor": 500}
    order("promo-1", T0 + 27 * HOUR, **promo)
    pipeline.payment("promo-1", PaymentKind.PAYMENT_SUCCEEDED, T0 + 27 * HOUR + 1)
    pipeline.payment("promo-1", PaymentKind.REFUND_SUCCEEDED, T0 + 28 * HOUR)
    _background(pipeline, T0 + 29 * HOUR, T0 + 5 * DAY, 3 * HOUR)
    order("burst-again", T0 + 5 * DAY, **burst)
    _background(pipeline, T0 + 5 * DAY + HOUR, T0 + 60 * DAY, 12 * HOUR)
    order("promo-60d", T0 + 60 * DAY, **{**promo, "device_id": "d-promo-new",
                                        "ip": "ip-promo-new"})
    _background(pipeline, T0 + 60 * DAY + HOUR, T0 + 95 * DAY, 12 * HOUR)
    order("promo-95d", T0 + 95 * DAY, **{**promo, "device_id": "d-promo-newer",
                                        "ip": "ip-promo-newer"})
    return reasons


def test_removing_rows_changes_no_decision_across_window_edges(tmp_path: Path) -> None:
    retiring = Pipeline(tmp_path / "retiring", SLACK)
    keeping = Pipeline(tmp_path / "keeping", NEVER)
    reasons = _script(retiring)
    assert _script(keeping) == reasons
    assert retiring.decisions == keeping.decisions
    assert retiring.answers == keeping.answers  # every count of every window, too

    # The traffic reaches every edge the test is about, so the equality above means
    # something: each rule fires where its window holds and not after.
    assert "user_burst_1m" in reasons["burst-3"]
    assert "token_card_testing_1h" in reasons["test-3"]
    assert "token_failed_then_paid_24h" in reasons["inside-day"]
    assert "token_failed_then_paid_24h" not in reasons["after-day"]
    assert "user_burst_1m" not in reasons["burst-again"]
    assert {"promo_refund_abuse", "promo_bonus_withheld"} <= set(reasons["promo-60d"])
    assert "promo_refund_abuse" not in reasons["promo-95d"]

    # ...and rows were really removed, each with a tombstone, including rows whose key
    # came back later (the burst user) and the promoted user past its refund memory.
    removed = retiring.velocity.tombstones
    assert {"user:u-burst", "token:tok-tested", "user:u-promo"} <= set(removed)
    assert removed.count("user:u-burst") == 2
    kept_rows = keeping.velocity.row_keys()
    live_rows = retiring.velocity.row_keys()
    assert live_rows < kept_rows and len(live_rows) * 20 < len(kept_rows)


def test_the_promotion_refund_memory_keeps_a_flagged_user_past_the_windows(
    tmp_path: Path
) -> None:
    velocity = VelocityPartition(tmp_path, SLACK)
    order = RiskOrder("o-1", "a-1", "u-1", T0, 1000, "USD", promo_id="WELCOME")
    for kind, at in ((ObservationKind.ATTEMPT, T0), (ObservationKind.SUCCESS, T0 + 1),
                     (ObservationKind.REFUND, T0 + HOUR)):
        for observation in fan_out(order, kind, at):
            velocity.observe(observation)
    _strangers(velocity, T0 + 2 * HOUR, T0 + 90 * DAY, DAY)
    assert "user:u-1" in velocity.row_keys()  # 89 days on: the refund is still remembered
    assert "account:a-1" not in velocity.row_keys()  # no promotion records: windows only
    _strangers(velocity, T0 + 90 * DAY, T0 + 92 * DAY, DAY)
    assert "user:u-1" not in velocity.row_keys()


def _strangers(velocity: VelocityPartition, start: int, end: int, every_ms: int) -> None:
    """Orders of new parties moving the partition's event time on."""
    for at in range(start, end, every_ms):
        order = RiskOrder(f"s-{at}", f"sa-{at}", f"su-{at}", at, 1000, "USD")
        for observation in fan_out(order, ObservationKind.ATTEMPT, at):
            velocity.observe(observation)


# A row is kept until its partition's event time passes its last window (24 h, plus the
# last 15 min bucket), the grace, the slack, and the rounding of the wake to the hour.
LIVE_MS = WINDOWS[-1].length_ms + WINDOWS[-1].bucket_ms + VelocityConfig().grace_ms \
    + SLACK + HOUR


def test_rows_follow_the_live_window_not_the_age_of_the_system(tmp_path: Path) -> None:
    velocity = VelocityPartition(tmp_path, SLACK)
    rng = random.Random(16)
    every = 20 * MINUTE
    orders_at: list[int] = []
    most_rows = 0
    for n in range(30 * DAY // every):  # 30 days, a new party every 20 minutes
        at = T0 + n * every + rng.randrange(every // 2)
        order = RiskOrder(f"o-{n}", f"a-{n}", f"u-{n}", at, 1000, "USD", device_id=f"d-{n}",
                          ip=f"ip-{n}", payment_token=f"tok-{n}")
        for observation in fan_out(order, ObservationKind.ATTEMPT, at):
            velocity.observe(observation)
        for observation in fan_out(order, ObservationKind.SUCCESS, at + 5_000):
            velocity.observe(observation)
        orders_at.append(at)
        rows = len(velocity.row_keys())
        most_rows = max(most_rows, rows)
        live_orders = sum(1 for seen in orders_at if seen > at - LIVE_MS)
        assert rows <= 5 * live_orders
    parties = 5 * len(orders_at)
    assert parties == 30 * 72 * 5
    # About a day and a bit of parties, of 30 days'.
    assert most_rows <= 5 * (LIVE_MS // every + 1) < parties // 20
    # Each removal wrote a tombstone, and the clock's own keys stay two per row (its wake
    # and the wake's index), plus the clock and the sweep's mark.
    assert len(velocity.tombstones) == parties - len(velocity.row_keys())
    all_keys = sum(1 for _ in velocity.stores[risk.VELOCITY.name].raw_items())
    assert all_keys == 3 * len(velocity.row_keys()) + 2
    # The measure topology.md states: keys and encoded values, wakes and clock included.
    per_row = velocity.logical_bytes(risk.VELOCITY.name) / len(velocity.row_keys())
    assert 200 < per_row < 600


def test_an_observation_behind_the_slack_is_counted_as_such(tmp_path: Path) -> None:
    metrics = Metrics(process_metrics=False)
    velocity = VelocityPartition(tmp_path, SLACK, metrics=metrics)
    _strangers(velocity, T0, T0 + 2 * DAY, 6 * HOUR)
    order = RiskOrder("late", "a-late", "u-late", T0 + DAY, 1000, "USD")
    answers = [answer for observation in fan_out(order, ObservationKind.ATTEMPT, T0 + DAY)
               for answer in velocity.observe(observation)]
    # Its key has no row (never had one here): it is answered, counted against itself.
    assert [answer.windows["1m"].attempts for answer in answers] == [1, 1]
    assert 'topup_risk_velocity_behind_retention_total{dimension="user"} 1.0' \
        in metrics.render()


def test_a_gathered_record_answers_as_its_observations_would_one_record_each(
    tmp_path: Path
) -> None:
    """A gathered record's observations can span more than the slack (a backlog): each is
    judged at the partition's event time as of itself, not as of the record's latest."""
    orders = [RiskOrder(f"o{n}", "a-1", "u-1", T0 + n * 2 * SLACK, 1000, "USD")
              for n in range(3)]
    observations = [observation for order in orders
                    for observation in fan_out(order, ObservationKind.ATTEMPT, order.occurred_at)]
    one_each = VelocityPartition(tmp_path / "one-each", SLACK)
    expected = [answer for observation in observations
                for answer in one_each.observe(observation)]
    metrics = Metrics(process_metrics=False)
    gathered = VelocityPartition(tmp_path / "gathered", SLACK, metrics=metrics)
    answers = [answer for send in gathered.run(topics.RISK_OBSERVATIONS, tuple(observations))
               for answer in topics.RISK_ANSWERS_TOPIC.decode(send.value)]
    assert answers == expected
    assert "topup_risk_velocity_behind_retention_total{" not in metrics.render()


def test_retire_at_is_where_a_fresh_row_answers_the_same() -> None:
    """The domain claim the stage relies on: from `retire_at` on, an observation against
    the old row and against no row gives the same outputs and the same row."""
    config = VelocityConfig(promo=PromoConfig(period_ms=2 * DAY, refund_memory_ms=10 * DAY))
    rng = random.Random(4)
    for trial in range(200):
        state = VelocityState()
        at = T0
        for n in range(rng.randrange(1, 12)):
            at += rng.randrange(0, 3 * HOUR)
            kind = rng.choice(list(ObservationKind))
            state, _ = observe(state, _obs(kind, f"o-{n}", at, rng), config)
        due = retire_at(state, config)
        for after in (due, due + rng.randrange(1, 2 * DAY)):
            probe = _obs(ObservationKind.ATTEMPT, "probe", after, rng)
            kept, kept_outputs = observe(state, probe, config)
            fresh, fresh_outputs = observe(VelocityState(), probe, config)
            assert kept_outputs == fresh_outputs, trial
            assert kept.to_dict() == fresh.to_dict(), trial


def _obs(kind: ObservationKind, order_id: str, at: int, rng: random.Random) -> Observation:
    return Observation(Dimension.USER, "u-1", kind, order_id, f"a-{rng.randrange(3)}", at,
                       1000, "USD", promo_id=rng.choice([None, "WELCOME"]))


def test_rows_stored_before_rows_were_removed_get_their_wake_and_go(tmp_path: Path) -> None:
    velocity = VelocityPartition(tmp_path, SLACK)
    legacy = {f"user:old-{n}": T0 - 30 * DAY + n * HOUR for n in range(10)}
    legacy["user:recent"] = T0 - HOUR
    rows = []
    for key, at in legacy.items():
        observation = Observation(Dimension.USER, key.removeprefix("user:"),
                                  ObservationKind.ATTEMPT, f"o-{key}", "a-1", at, 1000, "USD")
        state, _ = observe(VelocityState(), observation)
        rows.append((key.encode(), encode_value(state)))
    velocity.stores[risk.VELOCITY.name].write(rows)  # as an older version left them: no wake
    _strangers(velocity, T0, T0 + 3 * MINUTE, MINUTE)
    # Three orders (15 observations) looked at every row: the old ones went at once...
    assert not {key for key in legacy if key.startswith("user:old-")} & velocity.row_keys()
    assert set(velocity.tombstones) == set(legacy) - {"user:recent"}
    # ...the one still in its windows stays, now with its wake, until event time passes it.
    assert "user:recent" in velocity.row_keys()
    _strangers(velocity, T0 + 3 * MINUTE, T0 + 2 * DAY, HOUR)
    assert "user:recent" not in velocity.row_keys()


def test_an_hour_of_rows_coming_due_together_is_removed_a_few_per_record(
    tmp_path: Path
) -> None:
    velocity = VelocityPartition(tmp_path, SLACK)
    for n in range(100):  # one hour's new users: their wakes share one hour
        velocity.observe(Observation(Dimension.USER, f"u-{n}", ObservationKind.ATTEMPT,
                                     f"o-{n}", f"a-{n}", T0 + n * 1000, 1000, "USD"))
    removed_by: list[int] = []
    for n in range(10):
        before = len(velocity.tombstones)
        velocity.observe(Observation(Dimension.USER, "u-later", ObservationKind.ATTEMPT,
                                     f"later-{n}", "a-later", T0 + 3 * DAY + n, 1000, "USD"))
        removed_by.append(len(velocity.tombstones) - before)
    assert removed_by == [RETIRES_PER_RECORD] * 6 + [100 - 6 * RETIRES_PER_RECORD, 0, 0, 0]
    assert velocity.row_keys() == {"user:u-later"}
