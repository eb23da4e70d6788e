"""A generated population of honest users and fraud rings (generate), and the pure risk
core chained exactly as the stages chain it (RiskPipeline): fan-out per dimension,
velocity state per dimension key kept as JSON rows, answers back to the order's fan-in,
signals, score. Shared by the population, rule and backtest tests."""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.domain.orders.inputs import OrderEvent, OrderEventType
from streams.domain.risk.fanin import (
    FanInConfig,
    FanInState,
    Ready,
    RiskOrder,
    add_answer,
    fan_out,
    on_time,
    start,
)
from streams.domain.risk.rules import RiskAssessment, RuleSet, score
from streams.domain.risk.signals import SignalValue, build_signals
from streams.domain.risk.velocity import (
    Dimension,
    DimensionCounts,
    LateObservation,
    Observation,
    ObservationKind,
    PromoRefundFlagged,
    VelocityConfig,
    VelocityOutput,
    VelocityState,
    observe,
)

RULES_PATH = Path(__file__).resolve().parents[2] / "deploy" / "risk-rules.yaml"
SEED = 20250303
SIM_START = 1_740_960_000_000  # 2025-03-03T00:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass(frozen=True)
class Outcome:
    """A payment outcome of an order (FAILURE, SUCCESS) or a refund that went through."""

    order_id: str
    kind: ObservationKind
    occurred_at: int


PipelineEvent = OrderEvent | Outcome


def _json_row(data: dict[str, Any]) -> dict[str, Any]:
    # Tables hold bytes: whatever survives JSON is what the next step sees.
    return json.loads(json.dumps(data))


@dataclass
class RiskPipeline:
    """The risk stages' steps in one process, fed in event-time order."""

    rules: RuleSet
    velocity_config: VelocityConfig = field(default_factory=VelocityConfig)
    fanin_config: FanInConfig = field(default_factory=FanInConfig)
    # (order_id, dimension) answers that never make it back, to exercise the deadline.
    lost_answers: set[tuple[str, Dimension]] = field(default_factory=set)
    dimension_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    fanin_rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    assessments: dict[str, RiskAssessment] = field(default_factory=dict)
    signals: dict[str, dict[str, SignalValue]] = field(default_factory=dict)
    late: list[LateObservation] = field(default_factory=list)
    refund_flags: list[PromoRefundFlagged] = field(default_factory=list)
    _deadlines: list[tuple[int, str]] = field(default_factory=list)

    def run(self, events: Iterable[PipelineEvent]) -> None:
        for event in sorted(events, key=lambda e: e.occurred_at):
            self.feed(event)

    def feed(self, event: PipelineEvent) -> None:
        """One event as it arrives (`run` feeds them in event-time order)."""
        self.advance_to(event.occurred_at)
        if isinstance(event, OrderEvent):
            self._created(event)
        else:
            self._outcome(event)

    def advance_to(self, now: int) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, order_id = heapq.heappop(self._deadlines)
            state, ready = on_time(self._fanin(order_id), now)
            self._save_fanin(state, ready)

    def _fanin(self, order_id: str) -> FanInState:
        row = self.fanin_rows.get(order_id)
        return FanInState(order_id) if row is None else FanInState.from_dict(row)

    def _save_fanin(self, state: FanInState, ready: Ready | None) -> None:
        self.fanin_rows[state.order_id] = _json_row(state.to_dict())
        if ready is not None:
            signals = build_signals(ready)
            self.signals[ready.order.order_id] = signals
            self.assessments[ready.order.order_id] = score(self.rules, signals)

    def _observe(self, obs: Observation) -> tuple[VelocityOutput, ...]:
        row = self.dimension_rows.get(obs.routing_key)
        state = VelocityState() if row is None else VelocityState.from_dict(row)
        state, outputs = observe(state, obs, self.velocity_config)
        self.dimension_rows[obs.routing_key] = _json_row(state.to_dict())
        for output in outputs:
            if isinstance(output, LateObservation):
                self.late.append(output)
            elif isinstance(output, PromoRefundFlagged):
                self.refund_flags.append(output)
        return outputs

    def _created(self, event: OrderEvent) -> None:
        order = RiskOrder.from_event(event)
        state, ready = start(self._fanin(order.order_id), order, self.fanin_config)
        deadline = order.occurred_at + self.fanin_config.deadline_ms
        heapq.heappush(self._deadlines, (deadline, order.order_id))
        for obs in fan_out(order, ObservationKind.ATTEMPT, order.occurred_at):
            for output in self._observe(obs):
                if not isinstance(output, DimensionCounts):
                    continue
                if (order.order_id, output.dimension) in self.lost_answers:
                    continue
                # The answer travels as JSON, like the state.
                answer = DimensionCounts.from_dict(_json_row(output.to_dict()))
                state, answered = add_answer(state, answer)
                ready = ready or answered
        self._save_fanin(state, ready)

    def _outcome(self, outcome: Outcome) -> None:
        order = self._fanin(outcome.order_id).order
        assert order is not None, f"outcome before order {outcome.order_id}"
        for obs in fan_out(order, outcome.kind, outcome.occurred_at):
            self._observe(obs)


def created_event(
    order_id: str,
    at: int,
    *,
    user: str,
    account: str,
    device: str | None,
    ip: str | None,
    token: str | None,
    amount: int,
    account_created_at: int | None,
    verified: bool,
    promo: str | None = None,
    bonus: int = 0,
    currency: str = "CNY",
) -> OrderEvent:
    return OrderEvent(
        event_id=f"ev-{order_id}",
        type=OrderEventType.CREATED,
        order_id=order_id,
        occurred_at=at,
        account_id=account,
        user_id=user,
        amount_minor=amount,
        currency=currency,
        provider="wechatpay",
        merchant_id="m-topup",
        device_id=device,
        ip=ip,
        payment_token=token,
        account_created_at=account_created_at,
        user_verified=verified,
        promo_id=promo,
        promo_bonus_minor=bonus,
    )


# ---------------------------------------------------------------- the population


@dataclass(frozen=True)
class RingOrder:
    order_id: str
    ring: str
    detectable: bool


@dataclass
class Population:
    events: list[PipelineEvent] = field(default_factory=list)
    benign_orders: list[str] = field(default_factory=list)
    ring_orders: list[RingOrder] = field(default_factory=list)
    # Ring orders that must have their bonus withheld: a refund on their device came first.
    withheld_expected: set[str] = field(default_factory=set)


_SMALL_AMOUNTS = (600, 1000, 3000, 5000, 6800, 10_000, 19_800, 32_800, 64_800)
_AMOUNT_WEIGHTS = (10, 14, 18, 18, 10, 12, 8, 6, 4)
WELCOME = "WELCOME10"  # first top-up of a new account, 10 CNY bonus
SPRING = "SPRING3"  # seasonal, anyone once, 3 CNY bonus


class _Benign:
    """Honest users: repeat top-ups, new and unverified accounts, households sharing a
    tablet, offices and carrier NAT sharing ips, declined cards retried, a few refunds."""

    def __init__(self, rng: random.Random, population: Population) -> None:
        self.rng = rng
        self.population = population
        self.serial = 0

    def order_time(self, office: bool) -> int:
        rng = self.rng
        day = rng.randrange(3)
        if office:  # 09:00-18:00 in UTC+8
            hour = rng.uniform(1, 10)
        elif rng.random() < 0.03:  # the night owls: 02:00-06:00 in UTC+8
            hour = rng.uniform(18, 22)
        else:  # 08:00-24:00 in UTC+8
            hour = rng.uniform(0, 16)
        return SIM_START + day * DAY + int(hour * HOUR)

    def user(self, index: int, household_device: str | None) -> None:
        rng = self.rng
        user = f"u{index}"
        verified = rng.random() < 0.75
        accounts = [f"a{index}"] + ([f"a{index}-biz"] if rng.random() < 0.05 else [])
        devices = [f"d{index}"] + ([f"d{index}-pc"] if rng.random() < 0.3 else [])
        if household_device:
            devices.append(household_device)
        tokens = [f"t{index}"] + ([f"t{index}-2"] if rng.random() < 0.2 else [])
        home_ip = f"198.51.{index // 250}.{index % 250}"
        office_ip = f"203.0.113.{index % 3}" if index < 450 else None
        mobile_ip = f"100.64.0.{index % 20}" if 450 <= index < 750 else None
        order_count = rng.choices((1, 2, 3, 5, 7), weights=(35, 25, 20, 12, 8))[0]
        times = sorted(
            self.order_time(office_ip is not None and rng.random() < 0.7)
            for _ in range(order_count)
        )
        new_account = rng.random() < 0.15
        if new_account:
            created_at = times[0] - rng.randrange(5 * MINUTE, 6 * DAY)
        else:
            created_at = SIM_START - rng.randrange(30 * DAY, 1500 * DAY)
        welcome_left = new_account and rng.random() < 0.8
        spring_left = rng.random() < 0.1
        for at in times:
            ip = home_ip
            if office_ip and (at - SIM_START) % DAY < 10 * HOUR:
                ip = office_ip
            elif mobile_ip and rng.random() < 0.5:
                ip = mobile_ip
            promo, bonus = None, 0
            if welcome_left:
                promo, bonus, welcome_left = WELCOME, 1000, False
            elif spring_left and rng.random() < 0.5:
                promo, bonus, spring_left = SPRING, 300, False
            high = verified and created_at < at - 30 * DAY and rng.random() < 0.03
            amount = (
                rng.randrange(100_000, 300_001, 100)
                if high
                else rng.choices(_SMALL_AMOUNTS, weights=_AMOUNT_WEIGHTS)[0]
            )
            facts = {
                "user": user,
                "account": rng.choice(accounts),
                "device": rng.choice(devices),
                "ip": ip,
                "amount": amount,
                "account_created_at": created_at,
                "verified": verified,
                "promo": promo,
                "bonus": bonus,
            }
            self.attempt(at, facts, tokens)
            if rng.random() < 0.25:  # a second top-up right after the first
                self.attempt(
                    at + rng.randrange(20_000, 300_000),
                    {**facts, "promo": None, "bonus": 0},
                    tokens,
                )

    def attempt(self, at: int, facts: dict[str, Any], tokens: list[str]) -> None:
        """One purchase: declined cards are retried (same card or another) a few times."""
        rng = self.rng
        token = rng.choice(tokens)
        for _ in range(3):
            self.serial += 1
            order_id = f"b{self.serial}"
            self.population.events.append(created_event(order_id, at, token=token, **facts))
            self.population.benign_orders.append(order_id)
            outcome_at = at + rng.randrange(5_000, 60_000)
            if rng.random() < 0.93:
                self.population.events.append(
                    Outcome(order_id, ObservationKind.SUCCESS, outcome_at)
                )
                if rng.random() < 0.015:
                    refund_at = outcome_at + rng.randrange(HOUR, 20 * HOUR)
                    self.population.events.append(
                        Outcome(order_id, ObservationKind.REFUND, refund_at)
                    )
                return
            self.population.events.append(Outcome(order_id, ObservationKind.FAILURE, outcome_at))
            at = outcome_at + rng.randrange(30_000, 180_000)
            if rng.random() < 0.3:
                token = rng.choice(tokens)


def _benign_population(rng: random.Random, population: Population, users: int) -> None:
    benign = _Benign(rng, population)
    household_of: dict[int, str] = {}
    for index in range(0, users - 1, 2):
        if rng.random() < 0.08:
            household_of[index] = household_of[index + 1] = f"tablet-{index}"
    for index in range(users):
        benign.user(index, household_of.get(index))


def _card_testing(rng: random.Random, population: Population, ring: str, start: int) -> None:
    """One fresh account tests a stolen card: small charges declined until one passes,
    then the cash-out. Detectable from the token's third failed payment."""
    facts = {
        "user": f"{ring}-u",
        "account": f"{ring}-a",
        "device": f"{ring}-d",
        "ip": f"{ring}-ip",
        "token": f"{ring}-t",
        "account_created_at": start - 40 * MINUTE,
        "verified": False,
    }
    failures: list[int] = []
    at = start
    amounts = [rng.randrange(100, 400) for _ in range(8)] + [50_000, 80_000]
    for number, amount in enumerate(amounts):
        order_id = f"{ring}-o{number}"
        detectable = len([t for t in failures if t <= at]) >= 3
        population.events.append(created_event(order_id, at, amount=amount, **facts))
        population.ring_orders.append(RingOrder(order_id, ring, detectable))
        outcome_at = at + rng.randrange(10_000, 40_000)
        kind = ObservationKind.FAILURE if number < 7 else ObservationKind.SUCCESS
        if kind is ObservationKind.FAILURE:
            failures.append(outcome_at)
        population.events.append(Outcome(order_id, kind, outcome_at))
        at += rng.randrange(60_000, 150_000) if number < 7 else rng.randrange(5, 10) * MINUTE


def _device_farm(rng: random.Random, population: Population, ring: str, start: int) -> None:
    """Twelve taken-over accounts topped up from one emulator, each through its own proxy
    and card. Detectable from the first order of the third distinct account."""
    at = start
    accounts_seen: set[str] = set()
    for number in range(12):
        account = f"{ring}-a{number}"
        for repeat in range(1 + (number % 3 == 0)):
            order_id = f"{ring}-o{number}-{repeat}"
            accounts_seen.add(account)
            population.events.append(
                created_event(
                    order_id,
                    at,
                    user=f"{ring}-u{number}",
                    account=account,
                    device=f"{ring}-d",
                    ip=f"{ring}-proxy{number}",
                    token=f"{ring}-t{number}",
                    amount=rng.randrange(10_000, 30_001, 100),
                    account_created_at=start - rng.randrange(100, 900) * DAY,
                    verified=True,
                )
            )
            population.ring_orders.append(RingOrder(order_id, ring, len(accounts_seen) >= 3))
            outcome_at = at + rng.randrange(10_000, 40_000)
            population.events.append(Outcome(order_id, ObservationKind.SUCCESS, outcome_at))
            at += rng.randrange(8, 20) * MINUTE


def _promo_farm_devices(rng: random.Random, population: Population, ring: str, start: int) -> None:
    """36 brand-new accounts on four phones behind two ips, each taking the welcome bonus;
    a fifth of them refund right after. Detectable per phone from the promotion's second
    redemption on it; after a refund on a phone, its next bonuses are withheld."""
    redeemed_at: dict[str, list[int]] = {}
    refunded: dict[str, int] = {}
    at = start
    for number in range(36):
        device = f"{ring}-d{number % 4}"
        order_id = f"{ring}-o{number}"
        population.events.append(
            created_event(
                order_id,
                at,
                user=f"{ring}-u{number}",
                account=f"{ring}-a{number}",
                device=device,
                ip=f"{ring}-ip{number % 2}",
                token=f"{ring}-t{number}",
                amount=3000,
                account_created_at=at - rng.randrange(2, 10) * MINUTE,
                verified=False,
                promo=WELCOME,
                bonus=1000,
            )
        )
        detectable = sum(1 for paid in redeemed_at.get(device, ()) if paid <= at) >= 2
        population.ring_orders.append(RingOrder(order_id, ring, detectable))
        if device in refunded and refunded[device] < at:
            population.withheld_expected.add(order_id)
        paid_at = at + rng.randrange(10_000, 40_000)
        population.events.append(Outcome(order_id, ObservationKind.SUCCESS, paid_at))
        redeemed_at.setdefault(device, []).append(paid_at)
        if rng.random() < 0.2:
            refund_at = paid_at + rng.randrange(2, 8) * MINUTE
            population.events.append(Outcome(order_id, ObservationKind.REFUND, refund_at))
            refunded.setdefault(device, refund_at)
        at += rng.randrange(3, 7) * MINUTE


def _promo_farm_ip(rng: random.Random, population: Population, ring: str, start: int) -> None:
    """25 brand-new accounts behind one proxy ip, a fresh device id (emulator reset) and
    card each, all taking the welcome bonus. Detectable from its fifth redemption on the
    ip."""
    redeemed_at: list[int] = []
    at = start
    for number in range(25):
        order_id = f"{ring}-o{number}"
        population.events.append(
            created_event(
                order_id,
                at,
                user=f"{ring}-u{number}",
                account=f"{ring}-a{number}",
                device=f"{ring}-d{number}",
                ip=f"{ring}-ip",
                token=f"{ring}-t{number}",
                amount=rng.choice((3000, 5000)),
                account_created_at=at - rng.randrange(2, 30) * MINUTE,
                verified=False,
                promo=WELCOME,
                bonus=1000,
            )
        )
        detectable = sum(1 for paid in redeemed_at if paid <= at) >= 5
        population.ring_orders.append(RingOrder(order_id, ring, detectable))
        paid_at = at + rng.randrange(10_000, 40_000)
        population.events.append(Outcome(order_id, ObservationKind.SUCCESS, paid_at))
        redeemed_at.append(paid_at)
        at += rng.randrange(4, 9) * MINUTE


def generate(seed: int = SEED, users: int = 3000) -> Population:
    rng = random.Random(seed)
    population = Population()
    _benign_population(rng, population, users)
    _card_testing(rng, population, "ct1", SIM_START + 14 * HOUR + 7 * MINUTE)
    _card_testing(rng, population, "ct2", SIM_START + DAY + 19 * HOUR + 30 * MINUTE)
    _device_farm(rng, population, "df1", SIM_START + 3 * HOUR)
    _device_farm(rng, population, "df2", SIM_START + 2 * DAY + 20 * HOUR)
    _promo_farm_devices(rng, population, "pf1", SIM_START + DAY + 2 * HOUR)
    _promo_farm_ip(rng, population, "pi1", SIM_START + 2 * DAY + 5 * HOUR)
    return population
