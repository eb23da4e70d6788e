"""Promotion abuse: what one user, device or ip remembers about promoted top-ups.

A promotion's eligibility is the `promo_id` / `promo_bonus_minor` the order locked in at
creation; nothing here recomputes it. What is tracked is how often the same user, device
or ip redeemed a promotion (a promoted order whose payment succeeded) within a period of
event time, and which promoted orders were refunded afterwards (purchase-then-refund: the
buyer keeps a bonus for money they took back).

Policy: the first refunded promoted top-up only flags the user and device (a signal the
rules score); any later promoted order from a flagged user or device is the repeat, and
its bonus is withheld (`bonus_withheld`).

Records are kept per order (not in buckets), so they are exact whatever order they arrive
in; they are pruned once older than the period (or the refund memory) plus the grace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class PromoConfig:
    # "At most N redemptions per user/device per promotion per period": N lives in the rule
    # file (a rule over `promo.*.prior_redemptions`), the period here.
    period_ms: int = _DAY_MS
    refund_memory_ms: int = 90 * _DAY_MS
    # A farm device can redeem without bound; past this many records a count reads "N+".
    max_records: int = 50

    def __post_init__(self) -> None:
        for name in ("period_ms", "refund_memory_ms", "max_records"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive int")


@dataclass(frozen=True, slots=True)
class PromoRecord:
    """One promoted order that was redeemed (paid) or refunded, at that event time."""

    order_id: str
    promo_id: str
    at: int

    def to_dict(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "promo_id": self.promo_id, "at": self.at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromoRecord:
        return cls(order_id=data["order_id"], promo_id=data["promo_id"], at=data["at"])


@dataclass(frozen=True, slots=True)
class PromoUsage:
    """What one key's history says about an order that claims a promotion.

    `prior_redemptions`: other orders that redeemed the same promotion from this key within
    the period before the order. `refunded_redemptions`: promoted orders (any promotion)
    from this key refunded within the refund memory before the order.
    """

    prior_redemptions: int
    refunded_redemptions: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "prior_redemptions": self.prior_redemptions,
            "refunded_redemptions": self.refunded_redemptions,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromoUsage:
        return cls(
            prior_redemptions=data["prior_redemptions"],
            refunded_redemptions=data["refunded_redemptions"],
        )


@dataclass(frozen=True, slots=True)
class PromoState:
    redemptions: tuple[PromoRecord, ...] = ()
    refunds: tuple[PromoRecord, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "redemptions": [record.to_dict() for record in self.redemptions],
            "refunds": [record.to_dict() for record in self.refunds],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromoState:
        return cls(
            redemptions=tuple(PromoRecord.from_dict(r) for r in data.get("redemptions", ())),
            refunds=tuple(PromoRecord.from_dict(r) for r in data.get("refunds", ())),
        )


def _append(
    records: tuple[PromoRecord, ...], record: PromoRecord, cap: int
) -> tuple[PromoRecord, ...]:
    # Keyed by order: a second success or refund of the same order is the same fact.
    if any(existing.order_id == record.order_id for existing in records):
        return records
    ordered = sorted((*records, record), key=lambda r: (r.at, r.order_id))
    return tuple(ordered[-cap:])


def redeem(
    state: PromoState, promo_id: str, order_id: str, at: int, config: PromoConfig
) -> PromoState:
    """A promoted order's payment succeeded: the promotion was redeemed from this key."""
    record = PromoRecord(order_id, promo_id, at)
    return replace(state, redemptions=_append(state.redemptions, record, config.max_records))


def refund(
    state: PromoState, promo_id: str, order_id: str, at: int, config: PromoConfig
) -> tuple[PromoState, bool]:
    """A promoted order was refunded. Returns the state and whether this is news (the first
    refund recorded for that order), so the caller flags each purchase-then-refund once."""
    refunds = _append(state.refunds, PromoRecord(order_id, promo_id, at), config.max_records)
    return replace(state, refunds=refunds), refunds is not state.refunds


def usage(
    state: PromoState, promo_id: str, order_id: str, at: int, config: PromoConfig
) -> PromoUsage:
    """The history before an order at event time `at` claiming `promo_id`."""
    prior = sum(
        1
        for r in state.redemptions
        if r.promo_id == promo_id and r.order_id != order_id and at - config.period_ms < r.at <= at
    )
    refunded = sum(
        1
        for r in state.refunds
        if r.order_id != order_id and at - config.refund_memory_ms < r.at <= at
    )
    return PromoUsage(prior_redemptions=prior, refunded_redemptions=refunded)


def prune(state: PromoState, oldest_query_at: int, config: PromoConfig) -> PromoState:
    """Drop records no query at or after `oldest_query_at` can see."""
    redemptions = tuple(r for r in state.redemptions if r.at > oldest_query_at - config.period_ms)
    refunds = tuple(r for r in state.refunds if r.at > oldest_query_at - config.refund_memory_ms)
    if len(redemptions) == len(state.redemptions) and len(refunds) == len(state.refunds):
        return state
    return PromoState(redemptions=redemptions, refunds=refunds)


def visible_until(state: PromoState, config: PromoConfig) -> int | None:
    """The event time from which no `usage` query sees any of these records (None: none
    kept): a redemption counts for `period_ms` after it, a refund for `refund_memory_ms`."""
    ends = [r.at + config.period_ms for r in state.redemptions]
    ends += [r.at + config.refund_memory_ms for r in state.refunds]
    return max(ends, default=None)


def bonus_withheld(
    promo_bonus_minor: int, user: PromoUsage | None, device: PromoUsage | None
) -> bool:
    """Withhold the locked-in bonus of an order whose user or device already refunded a
    promoted top-up: this order is the repeat. (An ip is too widely shared to punish.)"""
    return promo_bonus_minor > 0 and any(
        usage is not None and usage.refunded_redemptions > 0 for usage in (user, device)
    )
