"""Promotion abuse: redemptions per period, purchase-then-refund, the withheld bonus."""

from __future__ import annotations

import json

import pytest

from streams.domain.risk import promotions
from streams.domain.risk.promotions import PromoConfig, PromoState, PromoUsage

T0 = 1_741_003_200_000
HOUR = 3_600_000
CONFIG = PromoConfig(period_ms=24 * HOUR, refund_memory_ms=30 * 24 * HOUR, max_records=5)


def redeemed(*entries: tuple[str, str, int]) -> PromoState:
    state = PromoState()
    for promo_id, order_id, at in entries:
        state = promotions.redeem(state, promo_id, order_id, at, CONFIG)
    return state


def test_prior_redemptions_count_the_same_promotion_within_the_period() -> None:
    state = redeemed(
        ("P1", "o1", T0 - 30 * HOUR),  # before the period
        ("P1", "o2", T0 - 2 * HOUR),
        ("P2", "o3", T0 - HOUR),  # another promotion
        ("P1", "o4", T0 + HOUR),  # after the order
    )
    assert promotions.usage(state, "P1", "o9", T0, CONFIG) == PromoUsage(1, 0)


def test_an_order_never_counts_against_itself() -> None:
    state = redeemed(("P1", "o1", T0))
    assert promotions.usage(state, "P1", "o1", T0, CONFIG).prior_redemptions == 0


def test_a_repeated_success_is_one_redemption() -> None:
    state = redeemed(("P1", "o1", T0), ("P1", "o1", T0 + 5))
    assert len(state.redemptions) == 1


def test_records_are_capped_so_a_farm_reads_as_many() -> None:
    state = redeemed(*(("P1", f"o{i}", T0 + i) for i in range(9)))
    assert len(state.redemptions) == CONFIG.max_records
    assert promotions.usage(state, "P1", "new", T0 + 100, CONFIG).prior_redemptions == 5


def test_refund_is_news_only_the_first_time() -> None:
    state, news = promotions.refund(PromoState(), "P1", "o1", T0, CONFIG)
    assert news
    again, news = promotions.refund(state, "P1", "o1", T0 + 5, CONFIG)
    assert not news and again == state
    assert promotions.usage(state, "P2", "o2", T0 + HOUR, CONFIG).refunded_redemptions == 1


def test_refunds_are_remembered_for_the_refund_memory() -> None:
    state, _ = promotions.refund(PromoState(), "P1", "o1", T0, CONFIG)
    later = T0 + CONFIG.refund_memory_ms
    assert promotions.usage(state, "P1", "o2", later - 1, CONFIG).refunded_redemptions == 1
    assert promotions.usage(state, "P1", "o2", later, CONFIG).refunded_redemptions == 0


def test_prune_keeps_what_a_query_can_still_see() -> None:
    state = redeemed(("P1", "old", T0 - 25 * HOUR), ("P1", "recent", T0 - HOUR))
    state, _ = promotions.refund(state, "P1", "old", T0 - 25 * HOUR, CONFIG)
    pruned = promotions.prune(state, T0, CONFIG)
    assert [r.order_id for r in pruned.redemptions] == ["recent"]
    assert [r.order_id for r in pruned.refunds] == ["old"]
    assert promotions.prune(pruned, T0, CONFIG) is pruned


@pytest.mark.parametrize(
    ("bonus", "user", "device", "withheld"),
    [
        (500, PromoUsage(0, 1), None, True),  # the user refunded a promoted top-up before
        (500, PromoUsage(0, 0), PromoUsage(3, 2), True),  # so did someone on the device
        (500, PromoUsage(1, 0), PromoUsage(1, 0), False),  # redeemed, never refunded
        (0, PromoUsage(0, 1), None, False),  # nothing to withhold
        (500, None, None, False),  # no evidence (the answers timed out)
    ],
)
def test_bonus_is_withheld_on_the_repeat(
    bonus: int, user: PromoUsage | None, device: PromoUsage | None, withheld: bool
) -> None:
    assert promotions.bonus_withheld(bonus, user, device) is withheld


def test_state_round_trips_through_json() -> None:
    state = redeemed(("P1", "o1", T0))
    state, _ = promotions.refund(state, "P1", "o1", T0 + HOUR, CONFIG)
    assert PromoState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="period_ms"):
        PromoConfig(period_ms=0)
