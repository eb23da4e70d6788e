"""The runtime's keyed-input check, its ticks and its topic-layout check, without Kafka."""

from __future__ import annotations

import pytest

from streams import topics
from streams.codecs import default_catalog
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.runtime.context import Record
from streams.runtime.layout import TopicLayoutError, check_copartitioned
from streams.runtime.repartition import Repartitioner
from streams.runtime.ticks import IdleTicker, decode_tick
from streams.stages.orders import order_key

HOUR_MS = 3_600_000
CATALOG = default_catalog()


def _order(order_id: str, partition: int, key: bytes | None = None, at: int = 0) -> Record:
    value = CATALOG.encode("OrderEvent", {
        "event_id": f"e-{order_id}", "type": "CREATED", "order_id": order_id,
        "occurred_at": at, "account_id": "a", "user_id": "u", "amount_minor": 1,
        "currency": "USD", "provider": "hmac", "merchant_id": "m",
    })
    return Record(topics.ORDERS, partition, 7, key, value, at, [("correlation_id", b"c-1")])


def _router(metrics: Metrics | None = None) -> Repartitioner:
    return Repartitioner({topics.ORDERS: order_key(CATALOG)}, {topics.ORDERS: 4}, CATALOG,
                         metrics or Metrics(), topics.ALERTS)


def test_a_record_in_place_is_handled_as_it_is_with_nothing_sent():
    right = partition_for(b"o-1", 4)
    record = _order("o-1", right, b"o-1")
    assert _router().route(record) == (record, [])


def test_a_misplaced_record_is_forwarded_whole_to_its_keys_partition():
    right = partition_for(b"o-1", 4)
    record = _order("o-1", (right + 1) % 4, b"o-1", at=5 * HOUR_MS)
    metrics = Metrics()
    handled, sends = _router(metrics).route(record)
    assert handled is None
    forward, alert = sends
    assert (forward.topic, forward.partition) == (topics.ORDERS_REPARTITION, right)
    assert (forward.key, forward.value, forward.headers, forward.timestamp_ms) == (
        record.key, record.value, record.headers, record.timestamp_ms)
    assert alert.topic == topics.ALERTS
    decoded = CATALOG.decode("Alert", alert.value)
    assert (decoded["kind"], decoded["severity"]) == ("INPUT_MISPARTITIONED", "WARN")
    assert "murmur2" in decoded["details"]["cause"]
    assert 'topup_records_repartitioned_total{topic="topup.orders"} 1' in metrics.render()


def test_a_null_key_is_routed_by_the_order_id_in_the_value():
    right = partition_for(b"o-2", 4)
    handled, [forward, _] = _router().route(_order("o-2", (right + 1) % 4, None))
    assert handled is None and forward.partition == right
    assert _router().route(_order("o-2", right, b""))[1] == []


def test_a_forwarded_record_is_handled_as_its_inputs():
    record = _order("o-3", 2, b"o-3")
    forwarded = Record(topics.ORDERS_REPARTITION, 2, 1, record.key, record.value, 0, [])
    handled, sends = _router().route(forwarded)
    assert handled is not None and handled.topic == topics.ORDERS and sends == []


def test_one_alert_per_topic_per_hour_and_again_after_an_aborted_batch():
    router = _router()
    wrong = (partition_for(b"o-4", 4) + 1) % 4

    def alerts(at: int) -> int:
        return sum(s.topic == topics.ALERTS for s in router.route(_order("o-4", wrong, b"o-4",
                                                                          at))[1])

    router.begin()
    assert alerts(HOUR_MS) == 1
    router.begin()  # that batch aborted: its alert was never written
    assert alerts(HOUR_MS + 1) == 1
    router.committed()
    router.begin()
    assert alerts(HOUR_MS + 2) == 0
    assert alerts(2 * HOUR_MS) == 1


def test_an_undecodable_keyless_record_stays_for_the_stages_to_refuse():
    record = Record(topics.ORDERS, 1, 0, None, b"junk", 0, [])
    assert _router().route(record) == (record, [])


def test_an_idle_partition_ticks_by_the_time_elapsed_since_its_last_input():
    now = [100.0]
    ticker = IdleTicker(5, now=lambda: now[0])
    ticker.assigned([0, 1])
    now[0] = 103.0
    ticker.seen(1)
    assert ticker.due() == []
    now[0] = 106.0
    [tick] = ticker.due()
    assert (tick.topic, tick.partition) == (topics.TICKS, 0)
    assert decode_tick_value(tick.value) == 6000
    now[0] = 109.5
    [tick] = ticker.due()
    assert (tick.partition, decode_tick_value(tick.value)) == (1, 6500)
    ticker.revoked([0, 1])
    now[0] = 200.0
    assert ticker.due() == []


def decode_tick_value(value: bytes | None) -> int:
    return decode_tick(Record(topics.TICKS, 0, 0, None, value, 0, []))


def test_the_layout_check_names_every_topic_that_differs():
    check_copartitioned({"a": 4, "b": 4}, 4)
    with pytest.raises(TopicLayoutError) as refused:
        check_copartitioned({"a": 4, "b": 3, "c": None}, 4)
    assert "b has 3" in str(refused.value) and "c does not exist" in str(refused.value)
    assert "a has" not in str(refused.value)
