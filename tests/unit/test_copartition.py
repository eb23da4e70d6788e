"""A partition number is handled only once every subscribed topic's is held here."""

from __future__ import annotations

import pytest

from streams.config import ConfigError, load_settings
from streams.runtime.copartition import Holdings
from streams.runtime.group_config import group_settings

TOPICS = ("orders", "payments", "ticks")


def test_a_number_is_complete_only_with_every_topic_and_stops_being_so_with_one_gone():
    holdings = Holdings(TOPICS)
    assert holdings.add([("orders", 0), ("payments", 0), ("orders", 1)]) == set()
    assert holdings.partial() == {0, 1} and not holdings.is_complete(0)
    assert holdings.add([("ticks", 0)]) == {0}
    assert holdings.is_complete(0) and holdings.partial() == {1}
    assert holdings.held([0]) == [("orders", 0), ("payments", 0), ("ticks", 0)]
    assert holdings.remove([("payments", 0)]) == {0}
    assert holdings.held([0]) == [("orders", 0), ("ticks", 0)]
    assert holdings.complete() == set()
    # Revoking what was never whole releases nothing.
    assert holdings.remove([("orders", 1)]) == set()
    assert holdings.held([1]) == []


def test_an_eager_assignment_completes_every_number_at_once():
    holdings = Holdings(TOPICS)
    every = [(topic, p) for topic in TOPICS for p in range(4)]
    assert holdings.add(every) == {0, 1, 2, 3}
    assert holdings.remove(every) == {0, 1, 2, 3}
    assert holdings.complete() == set() == holdings.partial()


def test_the_group_protocol_setting_and_the_group_liveness_it_implies():
    assert load_settings({}).group_protocol == "consumer"
    assert load_settings({"TOPUP_GROUP_PROTOCOL": "Classic"}).group_protocol == "classic"
    settings = load_settings({"TOPUP_SESSION_TIMEOUT_S": "6"})
    assert group_settings(settings) == {"consumer.session.timeout.ms": "6000",
                                        "consumer.heartbeat.interval.ms": "1000"}
    with pytest.raises(ConfigError, match="TOPUP_GROUP_PROTOCOL"):
        load_settings({"TOPUP_GROUP_PROTOCOL": "cooperative-sticky"})
