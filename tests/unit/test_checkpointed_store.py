"""A store partition keeps its data and changelog checkpoint across reopenings, and
distrusts (empties, saying why) a copy it cannot vouch for."""

from __future__ import annotations

import shutil
from pathlib import Path

from streams.runtime.changelog_topics import min_insync_replicas
from streams.runtime.closed_stores import ClosedStores
from streams.runtime.store import PartitionStore, encode_value


def test_data_and_checkpoint_survive_a_reopening(tmp_path: Path):
    store = PartitionStore(tmp_path / "s", None, "app-orders-changelog")
    assert (store.checkpoint, store.discarded) == (None, None)
    store.write([(b"k", encode_value(1)), (b"gone", None)], 17)
    store.close()
    again = PartitionStore(tmp_path / "s", None, "app-orders-changelog")
    assert (again.checkpoint, again.discarded) == (17, None)
    assert list(again.raw_items()) == [(b"k", encode_value(1))]
    # The checkpoint lies beyond every domain key: no scan ever meets it.
    assert [key for key, _ in again.scan("", "\U0010ffff")] == ["k"]


def test_a_write_without_offset_keeps_the_older_checkpoint(tmp_path: Path):
    store = PartitionStore(tmp_path / "s", None, "c")
    store.write([(b"a", b"1")], 5)
    store.write([(b"b", b"2")])
    store.close()
    assert PartitionStore(tmp_path / "s", None, "c").checkpoint == 5


def test_a_foreign_store_is_emptied_and_says_so(tmp_path: Path):
    store = PartitionStore(tmp_path / "s", None, "app-a-changelog")
    store.write([(b"k", b"v")], 3)
    store.close()
    other = PartitionStore(tmp_path / "s", None, "app-b-changelog")
    assert other.checkpoint is None
    assert other.discarded and "foreign store: it mirrors app-a-changelog" in other.discarded
    assert list(other.raw_items()) == []


def test_a_corrupt_store_is_emptied_and_says_so(tmp_path: Path):
    store = PartitionStore(tmp_path / "s", None, "c")
    store.write([(b"k", b"v")], 3)
    store.close()
    (tmp_path / "s" / "CURRENT").write_bytes(b"\x00garbage\n")
    again = PartitionStore(tmp_path / "s", None, "c")
    assert again.discarded and again.discarded.startswith("store failed to open")
    assert (again.checkpoint, list(again.raw_items())) == (None, [])


def test_a_store_without_checkpoint_is_not_trusted(tmp_path: Path):
    store = PartitionStore(tmp_path / "s", None, "c")
    store.write([(b"k", b"v")])
    store.close()
    again = PartitionStore(tmp_path / "s", None, "c")
    assert again.discarded == "no checkpoint in the local store"
    assert list(again.raw_items()) == []


def test_closed_store_partitions_are_removed_only_after_the_delay(tmp_path: Path):
    kept, reopened, leftover = (tmp_path / "orders" / p for p in ("0", "1", "2"))
    for path in (kept, reopened, leftover):
        path.mkdir(parents=True)
    closed = ClosedStores(tmp_path, delay_s=10)
    closed.closed(kept, now=100)
    closed.closed(reopened, now=100)
    closed.reopened(reopened)
    closed.adopt_leftovers([kept, reopened], now=105)
    closed.remove_expired(now=109)
    assert kept.exists() and leftover.exists()
    closed.remove_expired(now=110)
    assert not kept.exists() and reopened.exists() and leftover.exists()
    closed.remove_expired(now=115)
    assert not leftover.exists()
    shutil.rmtree(tmp_path / "orders")


def test_a_store_partition_a_standby_holds_is_never_removed(tmp_path: Path):
    held = tmp_path / "orders" / "0"
    held.mkdir(parents=True)
    closed = ClosedStores(tmp_path, delay_s=10)
    closed.closed(held, now=100)
    closed.hold(held)
    closed.remove_expired(now=200)
    assert held.exists()
    # Released by the standby: the delay starts again from then.
    closed.unhold(held, now=300)
    closed.remove_expired(now=309)
    assert held.exists()
    closed.remove_expired(now=310)
    assert not held.exists()


def test_min_insync_replicas_lets_a_commit_survive_one_broker_loss():
    assert [min_insync_replicas(rf) for rf in (1, 2, 3, 5)] == [1, 1, 2, 4]


def _wal_bytes(path: Path) -> int:
    return sum(log.stat().st_size for log in path.glob("*.log"))


def test_a_flush_leaves_no_write_ahead_log_to_replay(tmp_path: Path):
    # A store opened after a kill -9 replays its write-ahead log since the last flush;
    # a large restore flushes once done, so that replay is bounded by what came after.
    store = PartitionStore(tmp_path / "s", None, "c")
    for batch in range(20):
        store.write([(f"k{batch}-{i}".encode(), encode_value("v" * 50)) for i in range(1000)],
                    (batch + 1) * 1000)
    assert _wal_bytes(tmp_path / "s") > 1_000_000  # the restore's records, unflushed
    store.flush()
    assert _wal_bytes(tmp_path / "s") == 0
    store.close()
    again = PartitionStore(tmp_path / "s", None, "c")
    assert (again.checkpoint, again.discarded) == (20_000, None)
    assert again.get("k19-999") == "v" * 50
