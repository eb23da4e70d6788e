"""A store partition keeps committed domain states decoded, and never serves a stale one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.runtime import store as store_module
from streams.runtime.store import PartitionStore, encode_value


@dataclass(frozen=True)
class Counter:
    n: int

    decoded = 0  # how often a stored form was decoded, across instances

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counter:
        cls.decoded += 1
        return cls(data["n"])


def commit(store: PartitionStore, writes: dict[str, Any]) -> None:
    """What the worker does once a batch's transaction committed."""
    store.write((key.encode(), encode_value(value)) for key, value in writes.items())
    store.committed(writes)


def test_a_committed_state_is_encoded_for_the_changelog_and_read_back_without_decoding(
    tmp_path: Path,
):
    store = PartitionStore(tmp_path / "s", None, "test-changelog")
    state = Counter(3)
    commit(store, {"k": state})
    before = Counter.decoded
    assert store.load("k", Counter) is state
    assert Counter.decoded == before
    assert store.get("k") == {"n": 3}  # what the changelog and the HTTP surface see


def test_a_state_only_in_rocksdb_is_decoded_once_then_kept(tmp_path: Path):
    store = PartitionStore(tmp_path / "s", None, "test-changelog")
    store.write([(b"k", encode_value({"n": 5}))])  # as a restore from the changelog does
    before = Counter.decoded
    first = store.load("k", Counter)
    assert first == Counter(5)
    assert store.load("k", Counter) is first
    assert Counter.decoded == before + 1
    assert store.load("absent", Counter) is None


def test_a_plain_write_or_a_delete_replaces_what_was_kept(tmp_path: Path):
    store = PartitionStore(tmp_path / "s", None, "test-changelog")
    commit(store, {"a": Counter(1), "b": Counter(2)})
    commit(store, {"a": {"n": 10}, "b": None})
    assert store.load("a", Counter) == Counter(10)
    assert store.load("b", Counter) is None


def test_the_least_recently_used_states_are_dropped_beyond_the_bound(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(store_module, "DECODED_STATES_KEPT", 2)
    store = PartitionStore(tmp_path / "s", None, "test-changelog")
    commit(store, {"a": Counter(1), "b": Counter(2)})
    store.load("a", Counter)  # b is now the least recently used
    commit(store, {"c": Counter(3)})
    before = Counter.decoded
    assert store.load("a", Counter) == Counter(1)
    assert store.load("c", Counter) == Counter(3)
    assert Counter.decoded == before
    assert store.load("b", Counter) == Counter(2)  # dropped, so decoded from RocksDB again
    assert Counter.decoded == before + 1
