"""Deduplication in event time: a repeat within the window, a new sighting after it."""

from __future__ import annotations

from streams.domain.common.dedup import DAY_MS, DedupWindow


def test_a_sighting_within_the_window_repeats_the_first_and_one_after_it_is_new() -> None:
    window = DedupWindow.of_days(35)
    first = 1_795_000_000_000
    assert not window.is_repeat(None, first)
    assert window.is_repeat(first, first)
    assert window.is_repeat(first, first + 35 * DAY_MS)
    assert not window.is_repeat(first, first + 35 * DAY_MS + 1)


def test_a_sighting_dated_before_the_first_is_a_repeat() -> None:
    # Event times race: a re-delivery may carry an earlier time than the one kept.
    assert DedupWindow(1_000).is_repeat(5_000, 4_000)
