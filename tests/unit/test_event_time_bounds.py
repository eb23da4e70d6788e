"""Event times ahead of their reference are bounded always, behind it only when configured."""

from __future__ import annotations

import pytest

from streams.config import load_settings
from streams.domain.common.event_time import EventTimeBounds, EventTimeOutOfRange

DAY_MS = 86_400_000
T = 1_795_000_000_000


def test_by_default_the_past_is_allowed_and_the_far_future_is_not():
    bounds = EventTimeBounds.of_seconds(7 * 86_400, None)
    assert bounds.check("occurred_at", T - 3650 * DAY_MS, T) == T - 3650 * DAY_MS
    assert bounds.check("occurred_at", T + 7 * DAY_MS, T) == T + 7 * DAY_MS
    with pytest.raises(EventTimeOutOfRange, match=r"ahead.*TOPUP_MAX_EVENT_SKEW_S"):
        bounds.check("occurred_at", T + 7 * DAY_MS + 1, T)
    with pytest.raises(EventTimeOutOfRange, match="before 1970"):
        bounds.check("occurred_at", -1, T)


def test_a_configured_age_bounds_the_past_too():
    bounds = EventTimeBounds.of_seconds(7 * 86_400, 7 * 86_400)
    assert bounds.check("occurred_at", T - 7 * DAY_MS, T) == T - 7 * DAY_MS
    with pytest.raises(EventTimeOutOfRange, match=r"behind.*TOPUP_MAX_EVENT_AGE_S"):
        bounds.check("occurred_at", T - 7 * DAY_MS - 1, T)


def test_the_age_bound_is_off_unless_set():
    assert load_settings({}).max_event_age_s is None
    assert load_settings({"TOPUP_MAX_EVENT_AGE_S": "604800"}).max_event_age_s == 604_800
