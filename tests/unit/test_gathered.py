"""Items gathered over a batch into a record per topic partition (streams.runtime.gathered)."""

from __future__ import annotations

import json
from typing import Any

from streams import topics
from streams.codecs import default_catalog
from streams.config import load_settings
from streams.metrics import Metrics
from streams.runtime.context import RECORD_OVERHEAD, Context, Record, SizeLimits
from streams.runtime.gathered import MAX_ITEMS_PER_RECORD, Gathered, Gatherer
from streams.runtime.stage import Stage
from streams.runtime.testing import TopologyTestDriver
from streams.worker_config import runtime_config


def encode(items: tuple[Any, ...]) -> bytes:
    return json.dumps(list(items)).encode()


def gathered(topic: str, partition: int, *items: Any,
             headers: list[tuple[str, bytes]] | None = None) -> Gathered:
    return Gathered(topic, partition, f"key-{items[0]}".encode(), items, encode, headers)


def test_one_record_per_topic_partition_with_its_items_in_the_order_gathered() -> None:
    gatherer = Gatherer()
    gatherer.add([gathered("a", 0, 1, 2), gathered("a", 1, 3)])
    gatherer.add([gathered("b", 0, 4), gathered("a", 0, 5)])
    sends = gatherer.sends(SizeLimits())
    assert [(s.topic, s.partition, s.key, json.loads(s.value or b"")) for s in sends] == [
        ("a", 0, b"key-1", [1, 2, 5]), ("a", 1, b"key-3", [3]), ("b", 0, b"key-4", [4])]
    assert gatherer.sends(SizeLimits()) == []


def test_headers_are_kept_only_when_every_item_had_the_same() -> None:
    same, other = [("correlation_id", b"c1")], [("correlation_id", b"c2")]
    gatherer = Gatherer()
    gatherer.add([gathered("a", 0, 1, headers=same), gathered("a", 0, 2, headers=same),
                  gathered("a", 1, 3, headers=same), gathered("a", 1, 4, headers=other)])
    assert [send.headers for send in gatherer.sends(SizeLimits())] == [same, None]


def test_a_record_holds_a_bounded_number_of_items_each_under_its_own_key() -> None:
    gatherer = Gatherer()
    gatherer.add([gathered("a", 0, n) for n in range(MAX_ITEMS_PER_RECORD + 3)])
    sends = gatherer.sends(SizeLimits())
    assert [len(json.loads(send.value or b"")) for send in sends] == [MAX_ITEMS_PER_RECORD, 3]
    assert [send.key for send in sends] == [b"key-0", f"key-{MAX_ITEMS_PER_RECORD}".encode()]


def test_records_are_split_until_each_fits_the_topics_limit() -> None:
    item = "x" * 1_000
    limit = RECORD_OVERHEAD + 3_500  # three items and their JSON fit, four do not
    gatherer = Gatherer()
    gatherer.add([gathered("a", 0, item) for _ in range(10)])
    sends = gatherer.sends(SizeLimits({"a": limit}))
    sizes = [len(json.loads(send.value or b"")) for send in sends]
    assert sum(sizes) == 10 and max(sizes) <= 3
    assert all(len(send.key or b"") + len(send.value or b"") + RECORD_OVERHEAD <= limit
               for send in sends)


def test_a_record_whose_handler_fails_gathers_nothing_and_the_others_are_sent(tmp_path) -> None:
    def handle(ctx: Context, item: str) -> None:
        ctx.gather(Gathered(topics.RISK_ANSWERS, 0, b"k", (item,), encode))
        if item == "bad":
            raise RuntimeError("a bug")

    stage = Stage("gathering", (topics.ORDERS,), (), lambda record: record.value.decode(),
                  handle, outputs=(topics.RISK_ANSWERS,))
    settings = load_settings({"TOPUP_STATE_DIR": str(tmp_path)})
    catalog = default_catalog()
    with TopologyTestDriver(runtime_config(settings), [stage], catalog, Metrics()) as driver:
        driver.pipe_records([Record(topics.ORDERS, 0, offset, b"k", value, 0, [])
                             for offset, value in enumerate((b"good", b"bad", b"fine"))])
        [send] = driver.read_output(topics.RISK_ANSWERS)
        assert json.loads(send.value or b"") == ["good", "fine"]
        [dead] = driver.read_values(topics.DLQ)
        assert "processing failed: RuntimeError: a bug" in dead["error"]


def test_a_gathered_record_names_no_record_as_the_cause_of_its_refusal(tmp_path) -> None:
    """Were it refused, the last record handled is not its cause: the worker must isolate
    the batch (one record per transaction) rather than dead-letter that record."""
    def handle(ctx: Context, item: str) -> None:
        ctx.gather(Gathered(topics.RISK_ANSWERS, 0, b"k", (item,), encode))

    stage = Stage("gathering", (topics.ORDERS,), (), lambda record: record.value.decode(),
                  handle, outputs=(topics.RISK_ANSWERS,))
    settings = load_settings({"TOPUP_STATE_DIR": str(tmp_path)})
    with TopologyTestDriver(runtime_config(settings), [stage], default_catalog(),
                            Metrics()) as driver:
        handling: list[Record] = []
        named: list[list[Record]] = []
        driver.worker.handle_batch(
            [Record(topics.ORDERS, 0, offset, b"k", value, 0, [])
             for offset, value in enumerate((b"one", b"two"))],
            lambda send: named.append(list(handling)), handling)
        assert named == [[]]
