"""The flat signal dict the rules read, and the catalog of its names.

`SIGNALS` is the single source of truth: the rule-file validator accepts exactly these
names and checks each comparison against the signal's type. `build_signals` fills every
one of them from a completed fan-in.

A signal is None when it is unknown: the order lacks that dimension (no device), the
dimension did not answer before the deadline, the account's creation time is unknown, or
the order claims no promotion. Every comparison with None is false, so a rule never
fires on missing evidence; rules that want to score the absence use `*.missing` or
`fanin.*`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from streams.domain.risk import promotions
from streams.domain.risk.fanin import Ready
from streams.domain.risk.velocity import PROMO_DIMENSIONS, WINDOW_NAMES, Dimension, WindowCounts

SignalValue = bool | int | str | None

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class SignalSpec:
    name: str
    type: type[bool] | type[int] | type[str]
    description: str


_VELOCITY_METRICS: dict[str, tuple[type[bool] | type[int], str]] = {
    "attempts": (int, "orders created"),
    "failures": (int, "failed payments"),
    "successes": (int, "successful payments"),
    "amount": (int, "sum of attempted order amounts, minor units of the order's currency"),
    "distinct_accounts": (int, "distinct accounts seen (capped, 50 means 50 or more)"),
    "failure_then_success": (bool, "a failed payment was followed by a successful one"),
}


def velocity_signal(dimension: Dimension, window: str, metric: str) -> str:
    return f"velocity.{dimension.value}.{window}.{metric}"


def _catalog() -> dict[str, SignalSpec]:
    specs = [
        SignalSpec("identity.account_age_days", int, "whole days since creation"),
        SignalSpec("identity.user_verified", bool, "the user passed verification"),
        SignalSpec("device.missing", bool, "the order carries no device id"),
        SignalSpec("network.ip_missing", bool, "the order carries no ip"),
        SignalSpec("payment.token_missing", bool, "no payment token"),
        SignalSpec("order.amount_minor", int, "the order amount, minor units"),
        SignalSpec("order.currency", str, "ISO 4217 code of the order"),
        SignalSpec("order.hour_utc", int, "hour of day (0-23, UTC) it was made"),
        SignalSpec("promo.claimed", bool, "the order locked in a promotion"),
        SignalSpec("promo.bonus_minor", int, "the locked-in bonus, minor units"),
        SignalSpec(
            "promo.bonus_withheld",
            bool,
            "user or device refunded a promoted top-up before: this one is the repeat",
        ),
        SignalSpec("fanin.timed_out", bool, "a dimension missed the deadline"),
        SignalSpec("fanin.missing_dimensions", int, "dimensions that never answered"),
        SignalSpec("fanin.late_dimensions", int, "answers whose attempt came too late"),
    ]
    for dimension in Dimension:
        for window in WINDOW_NAMES:
            for metric, (kind, meaning) in _VELOCITY_METRICS.items():
                name = velocity_signal(dimension, window, metric)
                description = f"{meaning}, per {dimension.value}, last {window}"
                specs.append(SignalSpec(name, kind, description))
    for dimension in sorted(PROMO_DIMENSIONS):
        specs.append(
            SignalSpec(
                f"promo.{dimension.value}.prior_redemptions",
                int,
                f"other orders that redeemed this promotion from this {dimension.value} "
                "within the promotion period",
            )
        )
        specs.append(
            SignalSpec(
                f"promo.{dimension.value}.refunded_redemptions",
                int,
                f"promoted top-ups from this {dimension.value} later refunded",
            )
        )
    return {spec.name: spec for spec in specs}


SIGNALS: Mapping[str, SignalSpec] = MappingProxyType(_catalog())


# Each (dimension, window)'s signal names, in `_VELOCITY_METRICS` order: built once, as a
# decision fills 90 of them.
_VELOCITY_NAMES: dict[tuple[Dimension, str], tuple[str, ...]] = {
    (dimension, window): tuple(velocity_signal(dimension, window, metric)
                               for metric in _VELOCITY_METRICS)
    for dimension in Dimension for window in WINDOW_NAMES
}


def _velocity(counts: WindowCounts | None) -> tuple[SignalValue, ...]:
    if counts is None:
        return (None,) * len(_VELOCITY_METRICS)
    return (counts.attempts, counts.failures, counts.successes, counts.amount_minor,
            counts.distinct_accounts, counts.failure_then_success)


def build_signals(ready: Ready) -> dict[str, SignalValue]:
    """Every signal in `SIGNALS`, from a completed fan-in."""
    order = ready.order
    age_days = None
    if order.account_created_at is not None:
        # A creation time after the order (clock skew upstream) reads as a brand-new account.
        age_days = max(0, order.occurred_at - order.account_created_at) // _DAY_MS
    claimed = order.promo_id is not None
    promo_usage = {
        dimension: answer.promo
        for dimension, answer in ready.answers.items()
        if dimension in PROMO_DIMENSIONS
    }
    signals: dict[str, SignalValue] = {
        "identity.account_age_days": age_days,
        "identity.user_verified": order.user_verified,
        "device.missing": order.device_id is None,
        "network.ip_missing": order.ip is None,
        "payment.token_missing": order.payment_token is None,
        "order.amount_minor": order.amount_minor,
        "order.currency": order.currency,
        "order.hour_utc": order.occurred_at // _HOUR_MS % 24,
        "promo.claimed": claimed,
        "promo.bonus_minor": order.promo_bonus_minor if claimed else None,
        "promo.bonus_withheld": claimed
        and promotions.bonus_withheld(
            order.promo_bonus_minor,
            promo_usage.get(Dimension.USER),
            promo_usage.get(Dimension.DEVICE),
        ),
        "fanin.timed_out": ready.timed_out,
        "fanin.missing_dimensions": len(ready.missing),
        "fanin.late_dimensions": sum(1 for answer in ready.answers.values() if answer.late),
    }
    for dimension in Dimension:
        answer = ready.answers.get(dimension)
        for window in WINDOW_NAMES:
            counts = None if answer is None else answer.windows[window]
            signals.update(zip(_VELOCITY_NAMES[dimension, window], _velocity(counts),
                               strict=True))
    for dimension in PROMO_DIMENSIONS:
        usage = promo_usage.get(dimension)
        prefix = f"promo.{dimension.value}"
        signals[f"{prefix}.prior_redemptions"] = None if usage is None else usage.prior_redemptions
        signals[f"{prefix}.refunded_redemptions"] = (
            None if usage is None else usage.refunded_redemptions
        )
    return signals
