"""Standby replicas: warm copies of the store partitions this worker does not own.

A thread of the worker tails the changelogs of every store partition not owned here with
a plain consumer (manual assignment, never a group member, read_committed) and applies
them through `PartitionStore.write`, data and checkpoint in one write batch, at the path
the owner uses. When such a partition is assigned here, the owner's restore finds the
checkpoint near the changelog's end and replays only the tail. A standby copy decides
nothing: the owner's restore checks the checkpoint against the changelog's range and
replays from it to the last stable offset, as for any local store. It never produces and
never commits offsets: it only reads Kafka.

The worker calls `release` before it opens a store partition as owner, which returns once
the standby has closed it, and the standby opens a copy the worker gave away only once the
worker's (background) close of it has finished: one RocksDB never has two writers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from streams.metrics import Metrics
from streams.runtime.closed_stores import ClosedStores
from streams.runtime.config import RuntimeConfig
from streams.runtime.restore import FLUSH_AFTER_RECORDS
from streams.runtime.store import PartitionStore, StoreSpec

log = logging.getLogger(__name__)

# (store name, partition), as the worker keys its stores.
Key = tuple[str, int]

POLL_S = 0.2
MAX_RECORDS = 5_000
LAG_EVERY_S = 1.0
CLOSE_TIMEOUT_S = 5.0


class Standby:
    def __init__(self, settings: RuntimeConfig, specs: Mapping[str, StoreSpec],
                 closed: ClosedStores, metrics: Metrics,
                 wait_closed: Callable[[Path], None] = lambda path: None) -> None:
        """`wait_closed(path)` returns once the owner's close of that store partition, if
        one is under way, has finished."""
        self.settings, self.specs, self.closed, self.metrics = settings, specs, closed, metrics
        self._wait_closed = wait_closed
        self._every = {(name, p) for name in specs for p in range(settings.partitions)}
        self._by_changelog = {spec.changelog(settings.app_id): name
                              for name, spec in specs.items()}
        # Guards the sets and stores below between the worker's thread and the standby's.
        self._lock = threading.Lock()
        self._wanted: set[Key] = set()
        self._stores: dict[Key, PartitionStore] = {}
        # What the standby consumer is assigned (only its own thread changes it).
        self._assigned: set[Key] = set()
        # Records applied to each copy since its memtables were last flushed.
        self._unflushed: dict[Key, int] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        metrics.describe("topup_standby_partitions", "Store partitions kept warm as standbys")
        metrics.describe("topup_standby_lag_records",
                         "Changelog offsets the standby copies are behind their high "
                         "watermarks (open transactions and commit markers count)")
        metrics.describe("topup_standby_records_total", "Changelog records applied by standbys")
        metrics.set("topup_standby_partitions", 0)
        metrics.set("topup_standby_lag_records", math.nan)
        metrics.inc("topup_standby_records_total", 0)

    # -- the worker's side -------------------------------------------------------------

    def follow_all_but(self, owned: Iterable[Key]) -> None:
        """Keeps every store partition not in `owned` warm from now on."""
        with self._lock:
            self._wanted = self._every - set(owned)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="standby", daemon=True)
            self._thread.start()

    def follow(self, keys: Iterable[Key]) -> None:
        """Keeps `keys` warm too: store partitions the worker has just given away."""
        with self._lock:
            self._wanted |= set(keys)

    def release(self, keys: Iterable[Key]) -> None:
        """Stops tailing `keys` and closes their stores; on return the owner may open them."""
        with self._lock:
            for key in keys:
                self._wanted.discard(key)
                self._close(key)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(CLOSE_TIMEOUT_S + 5)
        with self._lock:
            self._wanted.clear()
            for key in list(self._stores):
                self._close(key)

    def held(self) -> set[Key]:
        with self._lock:
            return set(self._stores)

    # -- the standby's thread ----------------------------------------------------------

    def _run(self) -> None:
        consumer = Consumer({
            **self.settings.client,
            # Never subscribes: manual assignment only, so it is no member of any group
            # and commits nothing; librdkafka wants a group id all the same.
            "group.id": f"{self.settings.app_id}-standby",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            # A checkpoint outside the changelog's range (topic recreated, retention
            # passed): the copy is rebuilt from the start, never resumed elsewhere.
            "auto.offset.reset": "error",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 200,
        })
        last_lag = 0.0
        try:
            while not self._stopping.is_set():
                with self._lock:
                    self._reassign(consumer)
                if not self._assigned:
                    self._stopping.wait(POLL_S)
                    continue
                messages = consumer.consume(MAX_RECORDS, POLL_S)
                with self._lock:
                    self._apply(consumer, messages)
                    if time.monotonic() - last_lag >= LAG_EVERY_S:
                        last_lag = time.monotonic()
                        self._measure_lag(consumer)
        except Exception:
            # The owner's restore does not depend on a standby: without one it replays more.
            log.exception("standby failed; its copies stay as they are until reassigned")
        finally:
            consumer.close()

    def _reassign(self, consumer: Consumer) -> None:
        """The consumer's assignment brought to what is wanted, each new partition from
        its store's checkpoint (the start when it has none)."""
        for key in list(self._assigned):
            # Released (its store closed, maybe reopened by the owner) or no longer wanted.
            if key not in self._wanted or key not in self._stores:
                consumer.incremental_unassign([self._partition(key)])
                self._assigned.discard(key)
                self._close(key)
        for key in sorted(self._wanted - self._assigned):
            store = self._open(key)
            start = OFFSET_BEGINNING if store.checkpoint is None else store.checkpoint
            consumer.incremental_assign([self._partition(key, start)])
            self._assigned.add(key)
        self.metrics.set("topup_standby_partitions", len(self._stores))

    def _apply(self, consumer: Consumer, messages: list[Message]) -> None:
        batches: dict[Key, list[tuple[bytes, bytes | None]]] = {}
        ends: dict[Key, int] = {}
        for message in messages:
            key = self._key_of(message)
            if (error := message.error()) is not None:
                if key is not None and error.code() == KafkaError._AUTO_OFFSET_RESET:
                    self._rebuild(key, str(error))
                else:
                    log.warning("standby consumer: %s", error)
                continue
            if key is None or key not in self._stores:
                continue  # released since it was fetched: the owner has it now
            batches.setdefault(key, []).append((cast(bytes, message.key()), message.value()))
            ends[key] = cast(int, message.offset()) + 1
        applied = 0
        for key, items in batches.items():
            self._stores[key].write(items, ends[key])
            applied += len(items)
            # As after a restore: a kill -9 must not leave a long write-ahead log to
            # replay when the copy is next opened, by the owner.
            self._unflushed[key] = self._unflushed.get(key, 0) + len(items)
            if self._unflushed[key] >= FLUSH_AFTER_RECORDS:
                self._stores[key].flush()
                self._unflushed[key] = 0
        if applied:
            self.metrics.inc("topup_standby_records_total", applied)
        # Positions move past commit markers and aborted records, which hold no data: a
        # checkpoint there lets the owner's restore start at the very end.
        live = [key for key in self._assigned if key in self._stores]
        if not live:
            return
        for position in consumer.position([self._partition(key) for key in live]):
            key = (self._by_changelog[position.topic], position.partition)
            store = self._stores[key]
            if position.offset >= 0 and (store.checkpoint is None
                                         or position.offset > store.checkpoint):
                store.write((), position.offset)

    def _measure_lag(self, consumer: Consumer) -> None:
        """Under read_committed the cached high watermark is the last stable offset. Not
        a number until every copy's has been fetched once: 0 would claim a copy warm
        before the standby even knows where its changelog ends."""
        lag = 0.0
        for key in self._assigned:
            store = self._stores.get(key)
            if store is None:
                continue
            _, high = consumer.get_watermark_offsets(self._partition(key), cached=True)
            if high < 0:
                lag = math.nan
                break
            lag += max(0, high - (store.checkpoint or 0))
        self.metrics.set("topup_standby_lag_records", lag)

    def _rebuild(self, key: Key, why: str) -> None:
        store = self._stores.get(key)
        if store is not None:
            log.warning("standby copy of %s[%d] rebuilt from the changelog's start: %s",
                        *key, why)
            store.discard(f"standby: checkpoint outside the changelog's range ({why})")
            # Closed here, so _reassign assigns it again from the (now empty) start.
            self._close(key)

    # -- stores ------------------------------------------------------------------------

    def _open(self, key: Key) -> PartitionStore:
        spec = self.specs[key[0]]
        path = spec.path(self.settings.state_dir, key[1])
        self._wait_closed(path)
        self.closed.hold(path)
        store = PartitionStore(path, spec.ttl_s, spec.changelog(self.settings.app_id))
        self._stores[key] = store
        return store

    def _close(self, key: Key) -> None:
        store = self._stores.pop(key, None)
        if store is None:
            return
        if store.checkpoint is None:
            # Nothing applied yet (an empty changelog): left on disk without a checkpoint
            # it would only earn the owner a needless "full restore" of it.
            store.remove()
        else:
            store.close()
        self.closed.unhold(store.path, time.monotonic())

    def _partition(self, key: Key, offset: int | None = None) -> TopicPartition:
        topic = self.specs[key[0]].changelog(self.settings.app_id)
        return (TopicPartition(topic, key[1]) if offset is None
                else TopicPartition(topic, key[1], offset))

    def _key_of(self, message: Message) -> Key | None:
        topic, partition = message.topic(), message.partition()
        name = self._by_changelog.get(topic or "")
        return None if name is None or partition is None else (name, partition)
