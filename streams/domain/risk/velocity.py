"""What one dimension key (a user, account, device, ip or payment token) remembers, in
event time: windowed velocity counts and, for users, devices and ips, promotion records.

The fan-out sends one `Observation` per dimension of an order event, re-keyed by
`Observation.routing_key`; the stage on that partition keeps one `VelocityState` per key
and calls `observe(state, observation)`. An ATTEMPT (a created order) is answered with
`DimensionCounts`, which travels back keyed by `order_id` to the order's fan-in.

Windows slide over buckets. Each window has its own bucket width (1m over 5 s buckets,
1h over 1 min, 24h over 15 min), and the window at time t is the `length / width` buckets
ending with t's bucket: a burst that straddles a minute boundary still lands in one
window, whichever second it ends on. Counts are taken at the observation's own event
time, so a late observation is measured against what happened around it.

Lateness is judged against a per-key watermark, the largest event time this key has
seen. Per key is the deterministic choice: a key's observations all arrive on one
partition, in offset order, so its watermark depends only on its own history, never on
how other keys interleave or how many partitions there are; a replay sees the same
watermarks and decides the same. An observation older than watermark - grace is not
counted (its buckets may already be pruned) and is reported as `LateObservation` so the
stage can count and audit it. Buckets a future, non-late observation can no longer see
(older than window + grace) are pruned, which bounds the state of a key; `retire_at`
says when a whole row can go, which bounds the number of keys (the stage removes it on
its partition's event-time clock).

The caller sends each event once (the order machine's dedup runs before the fan-out);
counts are not idempotent on their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streams.domain.risk import promotions
from streams.domain.risk.promotions import PromoConfig, PromoState, PromoUsage


class Dimension(StrEnum):
    """The value is the name used in routing keys and signal names."""

    USER = "user"
    ACCOUNT = "account"
    DEVICE = "device"
    IP = "ip"
    PAYMENT_TOKEN = "token"


# Accounts are one per user in practice and a token identifies a card, not a person, so
# promotion limits are tracked where sharing means abuse.
PROMO_DIMENSIONS = frozenset({Dimension.USER, Dimension.DEVICE, Dimension.IP})


class ObservationKind(StrEnum):
    ATTEMPT = "ATTEMPT"  # an order was created: counted, and answered with DimensionCounts
    FAILURE = "FAILURE"  # its payment failed
    SUCCESS = "SUCCESS"  # its payment succeeded (a promoted one redeems the promotion)
    REFUND = "REFUND"  # a refund went through: only the promotion records care


@dataclass(frozen=True, slots=True)
class WindowSpec:
    name: str
    length_ms: int
    bucket_ms: int

    def bucket_start(self, at: int) -> int:
        return at - at % self.bucket_ms

    def span(self, at: int) -> tuple[int, int]:
        """The window ending at event time `at` includes the buckets starting in
        (after, through]."""
        through = self.bucket_start(at)
        return through - self.length_ms, through


# Fixed, not configurable: the rule file names signals after these windows.
WINDOWS = (
    WindowSpec("1m", 60_000, 5_000),
    WindowSpec("1h", 3_600_000, 60_000),
    WindowSpec("24h", 86_400_000, 900_000),
)
WINDOW_NAMES = tuple(window.name for window in WINDOWS)


@dataclass(frozen=True, slots=True)
class VelocityConfig:
    grace_ms: int = 5 * 60_000
    # Distinct accounts are counted exactly up to this cap and read as "cap or more" above
    # it: enough to tell a shared device from a farm, and it bounds each bucket.
    distinct_cap: int = 50
    promo: PromoConfig = field(default_factory=PromoConfig)

    def __post_init__(self) -> None:
        if type(self.grace_ms) is not int or self.grace_ms < 0:
            raise ValueError("grace_ms must be a non-negative int")
        if type(self.distinct_cap) is not int or self.distinct_cap < 1:
            raise ValueError("distinct_cap must be a positive int")


@dataclass(frozen=True, slots=True)
class Observation:
    """One order event as seen by one of its dimensions."""

    dimension: Dimension
    key: str
    kind: ObservationKind
    order_id: str
    account_id: str
    occurred_at: int
    amount_minor: int
    currency: str
    promo_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dimension, Dimension) or not isinstance(self.kind, ObservationKind):
            raise ValueError("dimension and kind must be enum members")
        for name in ("key", "order_id", "account_id"):
            if not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string")
        for name in ("occurred_at", "amount_minor"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative int")

    @property
    def routing_key(self) -> str:
        """The partitioning and table key: dimensions share one topic, so the key says
        which dimension a value belongs to (a user id may equal an account id)."""
        return f"{self.dimension.value}:{self.key}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension.value,
            "key": self.key,
            "kind": self.kind.value,
            "order_id": self.order_id,
            "account_id": self.account_id,
            "occurred_at": self.occurred_at,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "promo_id": self.promo_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observation:
        return cls(
            dimension=Dimension(data["dimension"]),
            key=data["key"],
            kind=ObservationKind(data["kind"]),
            order_id=data["order_id"],
            account_id=data["account_id"],
            occurred_at=data["occurred_at"],
            amount_minor=data["amount_minor"],
            currency=data["currency"],
            promo_id=data.get("promo_id"),
        )


def _earliest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass(frozen=True, slots=True)
class Bucket:
    attempts: int = 0
    failures: int = 0
    successes: int = 0
    # Attempted order amounts by currency: minor units of different currencies never add.
    amounts: Mapping[str, int] = field(default_factory=dict)
    accounts: frozenset[str] = frozenset()
    # Enough to tell, for any set of buckets, whether some failure preceded some success.
    first_failure_at: int | None = None
    last_success_at: int | None = None

    def add(self, obs: Observation, distinct_cap: int) -> Bucket:
        accounts = self.accounts
        # Per-bucket caps keep the union exact below the cap: if any bucket is full, the
        # window already holds at least `distinct_cap` accounts.
        if obs.account_id not in accounts and len(accounts) < distinct_cap:
            accounts = accounts | {obs.account_id}
        attempts, failures, successes = self.attempts, self.failures, self.successes
        amounts = self.amounts
        first_failure_at, last_success_at = self.first_failure_at, self.last_success_at
        if obs.kind is ObservationKind.ATTEMPT:
            attempts += 1
            amounts = {**amounts, obs.currency: amounts.get(obs.currency, 0) + obs.amount_minor}
        elif obs.kind is ObservationKind.FAILURE:
            failures += 1
            first_failure_at = _earliest(first_failure_at, obs.occurred_at)
        elif obs.kind is ObservationKind.SUCCESS:
            successes += 1
            last_success_at = _latest(last_success_at, obs.occurred_at)
        return Bucket(
            attempts, failures, successes, amounts, accounts, first_failure_at, last_success_at
        )

    # A row, not a dict: a busy key holds a hundred buckets and is re-encoded with every
    # observation, so the stored form is the cheapest to write and to read back.
    def to_row(self) -> list[Any]:
        return [self.attempts, self.failures, self.successes, dict(self.amounts),
                sorted(self.accounts), self.first_failure_at, self.last_success_at]

    @classmethod
    def from_row(cls, row: list[Any]) -> Bucket:
        attempts, failures, successes, amounts, accounts, first_failure, last_success = row
        return cls(attempts, failures, successes, amounts, frozenset(accounts), first_failure,
                   last_success)


@dataclass(frozen=True, slots=True)
class WindowCounts:
    attempts: int
    failures: int
    successes: int
    amount_minor: int  # attempted, in the answered order's currency
    distinct_accounts: int  # capped at VelocityConfig.distinct_cap
    failure_then_success: bool  # some failure happened before some success in the window

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "failures": self.failures,
            "successes": self.successes,
            "amount_minor": self.amount_minor,
            "distinct_accounts": self.distinct_accounts,
            "failure_then_success": self.failure_then_success,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowCounts:
        # Spelled out: an answer carries 3 windows and a decision reads 5 answers.
        return cls(data["attempts"], data["failures"], data["successes"],
                   data["amount_minor"], data["distinct_accounts"],
                   data["failure_then_success"])


@dataclass(frozen=True, slots=True)
class DimensionCounts:
    """The answer to an ATTEMPT, sent back keyed by `order_id` to the order's fan-in.

    `late`: the attempt itself was too late to be counted; the counts are then what the
    retained buckets still show around its time (possibly fewer than really happened).
    `promo`: set when the order claims a promotion and this dimension tracks promotions.
    """

    order_id: str
    dimension: Dimension
    key: str
    windows: Mapping[str, WindowCounts]
    late: bool = False
    promo: PromoUsage | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "dimension": self.dimension.value,
            "key": self.key,
            "windows": {name: counts.to_dict() for name, counts in self.windows.items()},
            "late": self.late,
            "promo": None if self.promo is None else self.promo.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DimensionCounts:
        promo = data.get("promo")
        return cls(
            order_id=data["order_id"],
            dimension=Dimension(data["dimension"]),
            key=data["key"],
            windows={name: WindowCounts.from_dict(c) for name, c in data["windows"].items()},
            late=data.get("late", False),
            promo=None if promo is None else PromoUsage.from_dict(promo),
        )


def velocity_evidence(answers: Mapping[Dimension, DimensionCounts]) -> dict[str, str]:
    """The counts behind a risk decision, for its audit record and a reviewer's eyes:
    `velocity.<dimension>.<window>` -> "attempts=3 failures=1 successes=0 amount=5000
    accounts=2" (" late" when the attempt came too late to count). The contract's
    RiskDecision has no field for them; an audit's inputs are a free map."""
    evidence = {}
    for dimension in Dimension:
        answer = answers.get(dimension)
        if answer is None:
            continue
        for window in WINDOW_NAMES:
            counts = answer.windows.get(window)
            if counts is None:
                continue
            evidence[f"velocity.{dimension.value}.{window}"] = (
                f"attempts={counts.attempts} failures={counts.failures} "
                f"successes={counts.successes} amount={counts.amount_minor} "
                f"accounts={counts.distinct_accounts}" + (" late" if answer.late else ""))
    return evidence


@dataclass(frozen=True, slots=True)
class LateObservation:
    """An observation older than the key's watermark minus grace: not counted. The stage
    counts it in the lateness metric and writes an audit record."""

    observation: Observation
    watermark: int
    grace_ms: int

    @property
    def lateness_ms(self) -> int:
        return self.watermark - self.observation.occurred_at

    def audit_inputs(self) -> dict[str, str]:
        obs = self.observation
        return {
            "dimension": obs.dimension.value,
            "key": obs.key,
            "kind": obs.kind.value,
            "occurred_at": str(obs.occurred_at),
            "watermark": str(self.watermark),
            "lateness_ms": str(self.lateness_ms),
            "grace_ms": str(self.grace_ms),
        }


@dataclass(frozen=True, slots=True)
class PromoRefundFlagged:
    """A promoted order from this user, device or ip was refunded (purchase-then-refund).
    Emitted once per order and key, for the audit; `refunded_redemptions` includes it."""

    dimension: Dimension
    key: str
    order_id: str
    promo_id: str
    occurred_at: int
    refunded_redemptions: int


VelocityOutput = DimensionCounts | LateObservation | PromoRefundFlagged


@dataclass(frozen=True, slots=True)
class VelocityState:
    """Everything one dimension key remembers; one row of the dimension's table."""

    watermark: int | None = None
    # Window name -> bucket start -> bucket.
    buckets: Mapping[str, Mapping[int, Bucket]] = field(
        default_factory=lambda: {window.name: {} for window in WINDOWS}
    )
    promo: PromoState = field(default_factory=PromoState)

    def to_dict(self) -> dict[str, Any]:
        return {
            "watermark": self.watermark,
            # JSON keys are strings; [start, *row] keeps the bucket starts as ints.
            "buckets": {
                name: [[start, *bucket.to_row()] for start, bucket in sorted(by_start.items())]
                for name, by_start in self.buckets.items()
            },
            "promo": self.promo.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VelocityState:
        stored = data.get("buckets", {})
        return cls(
            watermark=data.get("watermark"),
            buckets={
                window.name: {
                    row[0]: Bucket.from_row(row[1:]) for row in stored.get(window.name, ())
                }
                for window in WINDOWS
            },
            promo=PromoState.from_dict(data.get("promo", {})),
        )


def _with_observation(
    buckets: Mapping[str, Mapping[int, Bucket]], obs: Observation, config: VelocityConfig
) -> dict[str, Mapping[int, Bucket]]:
    updated: dict[str, Mapping[int, Bucket]] = {}
    for window in WINDOWS:
        by_start = buckets[window.name]
        start = window.bucket_start(obs.occurred_at)
        bucket = by_start.get(start, Bucket()).add(obs, config.distinct_cap)
        updated[window.name] = {**by_start, start: bucket}
    return updated


def _pruned(
    buckets: Mapping[str, Mapping[int, Bucket]], oldest_query_at: int
) -> dict[str, Mapping[int, Bucket]]:
    pruned: dict[str, Mapping[int, Bucket]] = {}
    for window in WINDOWS:
        by_start = buckets[window.name]
        floor = window.bucket_start(oldest_query_at) - window.length_ms
        if by_start and min(by_start) <= floor:
            by_start = {start: bucket for start, bucket in by_start.items() if start > floor}
        pruned[window.name] = by_start
    return pruned


def counts_at(
    state: VelocityState, at: int, currency: str, config: VelocityConfig
) -> dict[str, WindowCounts]:
    """The counts of every window ending at event time `at`."""
    result: dict[str, WindowCounts] = {}
    for window in WINDOWS:
        attempts = failures = successes = amount = 0
        accounts: set[str] = set()
        first_failure: int | None = None
        last_success: int | None = None
        after, through = window.span(at)
        for start, bucket in state.buckets[window.name].items():
            if not after < start <= through:
                continue
            attempts += bucket.attempts
            failures += bucket.failures
            successes += bucket.successes
            amount += bucket.amounts.get(currency, 0)
            accounts |= bucket.accounts
            first_failure = _earliest(first_failure, bucket.first_failure_at)
            last_success = _latest(last_success, bucket.last_success_at)
        result[window.name] = WindowCounts(
            attempts=attempts,
            failures=failures,
            successes=successes,
            amount_minor=amount,
            distinct_accounts=min(len(accounts), config.distinct_cap),
            failure_then_success=(
                first_failure is not None
                and last_success is not None
                and first_failure < last_success
            ),
        )
    return result


def retire_at(state: VelocityState, config: VelocityConfig) -> int:
    """The event time from which this row can no longer change any answer: an observation
    at or after it finds every bucket and promotion record invisible, is not late, and
    leaves the row exactly as a fresh row would be. So the row can be removed once no
    observation older than this can still arrive for its key.

    Why each term: a bucket starting at s is seen by queries before s + length; a record by
    `usage` before its period (or refund memory) ends. The grace is added because the
    first observation after that prunes at its time minus the grace, and queries that far
    back stay answerable. The watermark, because an observation before it could be late.
    """
    ends = [
        start + window.length_ms
        for window in WINDOWS
        for start in state.buckets[window.name]
    ]
    promo_end = promotions.visible_until(state.promo, config.promo)
    if promo_end is not None:
        ends.append(promo_end)
    last_seen = max(ends, default=None)
    watermark = state.watermark or 0
    return watermark if last_seen is None else max(watermark, last_seen + config.grace_ms)


def _promo_step(
    promo: PromoState, obs: Observation, config: PromoConfig
) -> tuple[PromoState, PromoUsage | None, bool]:
    """The promotion records' part: (state, usage for an ATTEMPT, whether a refund is news)."""
    if obs.promo_id is None or obs.dimension not in PROMO_DIMENSIONS:
        return promo, None, False
    facts = (obs.promo_id, obs.order_id, obs.occurred_at, config)
    if obs.kind is ObservationKind.ATTEMPT:
        return promo, promotions.usage(promo, *facts), False
    if obs.kind is ObservationKind.SUCCESS:
        return promotions.redeem(promo, *facts), None, False
    if obs.kind is ObservationKind.REFUND:
        promo, news = promotions.refund(promo, *facts)
        return promo, None, news
    return promo, None, False  # a failed payment redeems nothing


def _late(state: VelocityState, obs: Observation, config: VelocityConfig) -> LateObservation | None:
    if obs.kind is ObservationKind.REFUND or state.watermark is None:
        return None  # refunds only feed the exact promotion records
    if obs.occurred_at >= state.watermark - config.grace_ms:
        return None
    return LateObservation(obs, state.watermark, config.grace_ms)


def observe(
    state: VelocityState, obs: Observation, config: VelocityConfig | None = None
) -> tuple[VelocityState, tuple[VelocityOutput, ...]]:
    """Apply one observation to its key's state.

    Outputs, in this order: `DimensionCounts` for an ATTEMPT (always, late or not, so the
    fan-in is never left waiting); `LateObservation` when a counted kind arrives beyond the
    grace period; `PromoRefundFlagged` the first time a promoted order's refund reaches a
    user, device or ip.
    """
    config = config or VelocityConfig()
    late = _late(state, obs, config)
    watermark = (
        obs.occurred_at if state.watermark is None else max(state.watermark, obs.occurred_at)
    )
    buckets = state.buckets
    if obs.kind is not ObservationKind.REFUND and late is None:
        buckets = _with_observation(buckets, obs, config)
    # Promotion records are exact per order, so even a late one is kept.
    promo, usage, refund_news = _promo_step(state.promo, obs, config.promo)
    oldest_query_at = watermark - config.grace_ms
    new_state = VelocityState(
        watermark=watermark,
        buckets=_pruned(buckets, oldest_query_at),
        promo=promotions.prune(promo, oldest_query_at, config.promo),
    )

    outputs: list[VelocityOutput] = []
    if obs.kind is ObservationKind.ATTEMPT:
        windows = counts_at(new_state, obs.occurred_at, obs.currency, config)
        answer = DimensionCounts(
            obs.order_id, obs.dimension, obs.key, windows, late=late is not None, promo=usage
        )
        outputs.append(answer)
    if late is not None:
        outputs.append(late)
    if refund_news and obs.promo_id is not None:
        flagged = PromoRefundFlagged(
            dimension=obs.dimension,
            key=obs.key,
            order_id=obs.order_id,
            promo_id=obs.promo_id,
            occurred_at=obs.occurred_at,
            refunded_redemptions=len(new_state.promo.refunds),
        )
        outputs.append(flagged)
    return new_state, tuple(outputs)
