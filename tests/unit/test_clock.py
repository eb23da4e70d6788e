"""The per-partition event-time clock: wakes fire once event time reaches them."""

from hypothesis import given
from hypothesis import strategies as st

from streams.agents.clock import PartitionClock


def test_a_wake_fires_when_event_time_reaches_it_and_not_before():
    clock = PartitionClock()
    clock.wake("a", 100)
    clock.advance(99)
    assert clock.due() == []
    clock.advance(100)
    assert clock.due() == ["a"]


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.one_of(st.none(), st.integers(0, 50)),
                          st.integers(0, 50)), max_size=40))
def test_due_is_exactly_the_wakes_event_time_has_reached(moves):
    clock = PartitionClock()
    for key, at, advance_to in moves:
        clock.wake(key, at)
        clock.advance(advance_to)
        clock = PartitionClock.from_dict(clock.to_dict())  # as stored between records
        wanted = sorted(k for k, t in clock.wakes.items() if t <= clock.watermark)
        assert clock.due() == wanted
