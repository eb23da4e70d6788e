"""A handler's context: overlays of uncommitted writes, and isolated in-process calls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams import topics
from streams.codecs import default_catalog
from streams.metrics import Metrics
from streams.runtime.context import BatchWrites, Context, Record, Send, UndeclaredOutput
from streams.runtime.gathered import Gathered
from streams.runtime.store import PartitionStore, encode_value
from tests.builders import DIRECTORY

GATHERED = Gathered(topics.ALERTS, 0, b"k", ("item",), lambda items: b"items")


def context(tmp_path: Path, pending: dict[str, Any]) -> Context:
    store = PartitionStore(tmp_path / "s", None, "test-changelog")
    store.write([(b"committed", encode_value("c")), (b"shadowed", encode_value("old"))])
    record = Record(topics.ORDERS, 2, 7, b"o-1", b"...", 0, [])
    return Context(record, default_catalog(), Metrics(), {"s": store}, {"s": pending},
                   directory=DIRECTORY)


def test_a_child_sees_its_callers_writes_and_its_own_join_them_when_it_returns(tmp_path):
    ctx = context(tmp_path, {"shadowed": "pending"})
    ctx.table("s")["caller"] = 1

    def fused(child: Context, item: str) -> None:
        table = child.table("s")
        assert (table.get("caller"), table.get("shadowed"), table.get("committed")) == (
            1, "pending", "c")
        table[item] = 2
        assert [key for key, _ in table.scan("a", "z")] == ["caller", "committed", item,
                                                              "shadowed"]
        child.gather(GATHERED)

    ctx.run_isolated(fused, "fused", "reconciliation")
    assert ctx.layers["s"] == {"caller": 1, "fused": 2}
    assert ctx.sends == []
    assert ctx.gathered == [GATHERED]


def test_a_failing_child_leaves_nothing_but_a_dead_letter_and_its_caller_keeps_its_work(
    tmp_path
):
    ctx = context(tmp_path, {})
    ctx.table("s")["caller"] = 1

    def fused(child: Context, item: str) -> None:
        child.table("s")["half-done"] = item
        child.send(Send(topics.ALERTS, b"k", b"v"))  # never reaches the caller's sends
        child.gather(GATHERED)  # nor this
        raise RuntimeError("a bug")

    ctx.run_isolated(fused, "x", "reconciliation")
    assert ctx.layers["s"] == {"caller": 1}
    assert ctx.gathered == []
    [dead] = ctx.sends
    assert dead.topic == topics.DLQ
    value = default_catalog().decode("DeadLetter", dead.value)
    assert value["error_kind"] == "BAD_PAYLOAD"
    assert "reconciliation failed: RuntimeError: a bug" in value["error"]



def test_a_state_written_in_this_batch_is_loaded_as_the_very_object_written(tmp_path):
    ctx = context(tmp_path, {})
    table = ctx.table("s")
    assert table.load("tally", Tally) is None
    tally = Tally(2)
    table["tally"] = tally
    assert table.load("tally", Tally) is tally


@dataclass(frozen=True)
class Tally:
    deliveries: int

    def to_dict(self) -> dict[str, Any]:
        return {"deliveries": self.deliveries}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        return cls(data["deliveries"])


def test_a_scan_finds_the_batchs_index_writes_in_order_without_its_other_keys(tmp_path):
    batch = BatchWrites()
    batch.update({"~wake|2|b": 1, "order-9": {"x": 1}, "~wake|1|a": 1})
    batch.update({"~wake|1|a": None, "~wake|3|c": 1, "~wake-of|c": 3})
    table = context(tmp_path, batch).table("s")
    assert table.scan("~wake|", "~wake}") == [("~wake|2|b", 1), ("~wake|3|c", 1)]
    assert table.scan("~wake|", "~wake}", limit=1) == [("~wake|2|b", 1)]
    # Below the index keys, a scan still sees every write in range.
    assert [key for key, _ in table.scan("a", "z")] == ["committed", "order-9", "shadowed"]


def test_an_output_over_its_topic_limit_is_refused_before_it_is_produced(tmp_path):
    from streams.runtime.context import OutputTooLarge, SizeLimits

    ctx = context(tmp_path, {})
    ctx.limits = SizeLimits({topics.CREDITS: 10_000})
    ctx.send(Send(topics.CREDITS, b"k", b"v" * 9_000))
    try:
        ctx.send(Send(topics.CREDITS, b"k", b"v" * 10_000))
    except OutputTooLarge as exc:
        assert "10000-byte limit" in str(exc)
    else:
        raise AssertionError("an oversized output was accepted")
    assert len(ctx.sends) == 1


def test_a_dead_letter_too_large_for_the_dlq_is_a_truncated_copy_with_size_and_hash(tmp_path):
    import hashlib

    from streams.runtime.context import SizeLimits

    store = PartitionStore(tmp_path / "s", None, "test-changelog")
    original = b"\x01" * 50_000
    record = Record(topics.ORDERS, 0, 3, b"key", original, 0, [])
    ctx = Context(record, default_catalog(), Metrics(), {"s": store}, {"s": {}},
                  limits=SizeLimits({topics.DLQ: 20_000}), directory=DIRECTORY)
    ctx.dead_letter("UNDECODABLE", "not avro " + "x" * 5_000)
    [send] = ctx.sends
    assert len(send.value) < 20_000
    letter = default_catalog().decode("DeadLetter", send.value)
    assert original.startswith(letter["value"]) and len(letter["value"]) > 10_000
    assert f"original value of 50000 bytes (sha256 {hashlib.sha256(original).hexdigest()})" in (
        letter["error"])
    assert letter["key"] == b"key" and letter["offset"] == 3


def test_a_send_to_an_undeclared_topic_is_refused_but_a_dead_letter_is_not(tmp_path):
    ctx = context(tmp_path, {})
    ctx.outputs = frozenset({topics.ALERTS})
    ctx.send(Send(topics.ALERTS, b"k", b"v"))
    with pytest.raises(UndeclaredOutput, match=r"topup\.credits.*topup\.alerts.*Stage\.outputs"):
        ctx.send(Send(topics.CREDITS, b"k", b"v"))
    ctx.dead_letter("BAD_PAYLOAD", "the runtime's own output")
    assert [send.topic for send in ctx.sends] == [topics.ALERTS, topics.DLQ]


def test_a_fused_call_is_held_to_its_callers_outputs(tmp_path):
    ctx = context(tmp_path, {})
    ctx.outputs = frozenset({topics.ALERTS})

    def fused(child: Context, item: str) -> None:
        child.send(Send(topics.CREDITS, b"k", b"v"))

    ctx.run_isolated(fused, "x", "reconciliation")
    [dead] = ctx.sends
    value = default_catalog().decode("DeadLetter", dead.value)
    assert "UndeclaredOutput" in value["error"]
