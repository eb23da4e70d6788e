"""The broker-reach mark behind /health's "no broker reachable": set by librdkafka's
_ALL_BROKERS_DOWN, cleared by anything a broker answered, probed only while set."""

from __future__ import annotations

from confluent_kafka import KafkaError

from streams.runtime.broker_reach import PROBE_EVERY_S, BrokerReach


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_all_brokers_down_starts_the_count_and_a_broker_answering_ends_it():
    clock = Clock()
    reach = BrokerReach(clock)
    assert reach.lost_for() is None
    reach.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    clock.now += 5
    # A repeat while still lost does not restart the count.
    reach.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    clock.now += 4
    assert reach.lost_for() == 9
    reach.heard()
    assert reach.lost_for() is None


def test_one_connection_lost_is_not_every_broker_lost():
    reach = BrokerReach(Clock())
    reach.on_error(KafkaError(KafkaError._TRANSPORT))
    reach.on_error(KafkaError(KafkaError._TIMED_OUT))
    assert reach.lost_for() is None


def test_probes_only_while_lost_and_at_most_once_per_interval():
    clock = Clock()
    reach = BrokerReach(clock)
    assert not reach.probe_due()
    reach.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    assert reach.probe_due()
    assert not reach.probe_due()
    clock.now += PROBE_EVERY_S
    assert reach.probe_due()
    reach.heard()
    clock.now += PROBE_EVERY_S
    assert not reach.probe_due()
