"""Issue 16, bounded state: an ended order is removed after its retention (a tombstone on
its changelog), and what comes for it later never credits it a second time."""

from __future__ import annotations

from collections import Counter
from itertools import count, islice

from streams import topics, wire
from streams.kafka_clients import ConsumedRecord
from streams.partitioning import partition_for
from streams.stages.orders import ORDER_STATE
from tests.builders import NOW_MS, order_event, payment_event
from tests.integration.flow import Flow
from tests.integration.store_checks import state_env
from tests.kafka_harness import decode_all, read_until, settings_from

DAY_MS = 24 * 60 * 60 * 1000


def _same_partition(order_id: str, partitions: int, how_many: int) -> list[str]:
    """Order ids on the partition of `order_id`: their inputs move its clock."""
    wanted = partition_for(order_id.encode(), partitions)
    same = (oid for oid in (f"o-clock-{i}" for i in count())
            if partition_for(oid.encode(), partitions) == wanted)
    return list(islice(same, how_many))


def _last_state(
    records: list[ConsumedRecord], changelog: str, order_id: str
) -> tuple[bool, dict | None]:
    """Whether the order's changelog has a record for it, and its last value."""
    last: tuple[bool, dict | None] = (False, None)
    for record in records:
        if record.topic == changelog and ORDER_STATE.own_key(record.key) == order_id:
            last = (True, None if record.value is None else wire.loads(record.value))
    return last


def test_an_ended_order_is_removed_and_a_late_callback_never_credits_it_again(
    kafka_env, workers
):
    env = {**state_env(kafka_env), "TOPUP_ORDER_RETENTION_DAYS": "1"}
    settings = settings_from(env)
    changelog = ORDER_STATE.changelog(settings.app_id)
    flow = Flow(settings)
    worker = workers.start("a", **env)

    def pay(order_id: str, at: int, event_id: str | None = None) -> str:
        paid = payment_event(order_id, at=at + 500,
                             **({"event_id": event_id} if event_id else {}))
        flow.callback(paid)
        return paid.external_txn_id

    def credited(order_id: str) -> Counter:
        records = read_until(
            settings, [topics.CREDITS],
            lambda rs: any(c["order_id"] == order_id for c in decode_all(rs, topics.CREDITS)),
            timeout_s=180, workers=[worker])
        return Counter(c["order_id"] for c in decode_all(records, topics.CREDITS)
                       if c["op"] == "CREDIT")

    flow.order(order_event("o-ret", at=NOW_MS))
    pay("o-ret", NOW_MS)
    flow.flush()
    credited("o-ret")

    # Two days later in event time, on the same partition: o-ret's day has passed.
    clock, sentinel = _same_partition("o-ret", settings.partitions, 2)
    later = NOW_MS + 2 * DAY_MS
    flow.order(order_event(clock, at=later))
    pay(clock, later)
    flow.flush()
    credited(clock)
    removed = read_until(
        settings, [changelog],
        lambda rs: _last_state(rs, changelog, "o-ret") == (True, None),
        timeout_s=120, workers=[worker])
    assert _last_state(removed, changelog, "o-ret") == (True, None)

    # The order service replays o-ret (its old date), and the provider sends another
    # success event for the same payment, dated by intake now.
    flow.order(order_event("o-ret", at=NOW_MS))
    pay("o-ret", later + 10_000, event_id="evt-o-ret-again")
    flow.order(order_event(sentinel, at=later + 20_000))
    pay(sentinel, later + 20_000)
    flow.flush()
    counts = credited(sentinel)
    assert counts["o-ret"] == 1

    dead = read_until(
        settings, [topics.DLQ],
        lambda rs: any("retention horizon" in d["error"] for d in decode_all(rs, topics.DLQ)),
        timeout_s=60, workers=[worker])
    refused = [d for d in decode_all(dead, topics.DLQ) if "retention horizon" in d["error"]]
    # The replayed CREATED, and the risk stage's new verdict for it (its fan-in is gone
    # too), dated before the horizon; never the payment.
    assert {d["key"] for d in refused} == {b"o-ret"}
    sources = {d["source_topic"] for d in refused}
    assert any("orders" in source for source in sources), sources
    assert sources <= {topics.ORDERS, topics.RISK_DECISIONS} | {
        source for source in sources if source.startswith(topics.ORDERS)}, sources
    # The late payment is held as an orphan of an order never seen, not applied to one.
    records = read_until(
        settings, [changelog],
        lambda rs: (_last_state(rs, changelog, "o-ret")[1] or {}).get("held_payments"),
        timeout_s=60, workers=[worker])
    _, orphan = _last_state(records, changelog, "o-ret")
    assert orphan is not None and "status" not in orphan
    worker.stop()
