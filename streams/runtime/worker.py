"""The processing loop: consume a batch, handle it, commit it in one transaction.

One consumer (read_committed, eager range assignment so co-partitioned topics land
together) and one transactional producer per worker. Each batch is a transaction holding
every output, every changelog write and the consumed offsets; the batch's writes reach
the local stores only after the commit succeeded. An abortable failure aborts the
transaction, drops the batch's writes and rewinds the consumer to the batch's start.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams.admin import create_topics
from streams.codecs import DecodeError, SchemaCatalog
from streams.config import Settings
from streams.kafka_clients import PARTITIONER
from streams.metrics import Metrics
from streams.runtime.context import BatchWrites, Context, Record, Send
from streams.runtime.restore import restore
from streams.runtime.stage import Stage
from streams.runtime.store import PartitionStore, StoreSpec, encode_value
from streams.topics import TopicSpec

log = logging.getLogger(__name__)

TRANSACTION_TIMEOUT_MS = 10_000
RETRY_BACKOFF_S = 1.0
RESTORE_TIMEOUT_S = 900.0
# Handling a batch allocates many short-lived objects while the stores keep decoded
# states alive; the default young-generation threshold (700) walks them thousands of
# times a second. bench/HISTORY.md has the before and after.
GC_THRESHOLD = (100_000, 50, 100)

# Per store partition: the batch's writes, and then as (key, value or None) bytes.
Pending = dict[tuple[str, int], BatchWrites]
Encoded = dict[tuple[str, int], list[tuple[bytes, bytes | None]]]


def transactional_id(settings: Settings) -> str:
    """Stable across restarts of one worker (its state dir), so a restart fences its past
    self at once instead of waiting out the dead transaction's timeout."""
    where = hashlib.sha256(str(settings.state_dir.resolve()).encode()).hexdigest()[:12]
    return f"{settings.app_id}-{where}"


def changelog_specs(app_id: str, stages: Sequence[Stage]) -> tuple[TopicSpec, ...]:
    """The compacted changelog of every store, once even when stages share a store."""
    specs = {spec.name: spec for stage in stages for spec in stage.stores}
    return tuple(TopicSpec(spec.changelog(app_id), None, compacted=True,
                           overrides=spec.changelog_config) for spec in specs.values())


class Worker:
    def __init__(
        self,
        settings: Settings,
        stages: Sequence[Stage],
        catalog: SchemaCatalog,
        metrics: Metrics,
    ) -> None:
        self.settings, self.catalog, self.metrics = settings, catalog, metrics
        self.stages = tuple(stages)
        # A topic may feed several stages (orders feed the order and the risk stage): each
        # handles the record in turn, in the same transaction.
        self.stages_of: dict[str, list[Stage]] = {}
        for stage in self.stages:
            for topic in stage.topics:
                self.stages_of.setdefault(topic, []).append(stage)
        self.specs = {spec.name: spec for stage in self.stages for spec in stage.stores}
        self.stores: dict[tuple[str, int], PartitionStore] = {}
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self._stores_lock = threading.Lock()
        metrics.describe("topup_batches_committed_total", "Transactions committed")
        metrics.describe("topup_batches_aborted_total", "Transactions aborted and replayed")
        metrics.describe("topup_restore_duration_seconds", "Store restore time on assignment")
        metrics.describe("topup_transaction_commit_seconds", "Time to commit one transaction")
        metrics.describe("topup_stage_handle_seconds", "Handling time of one record, by stage")
        metrics.describe("topup_consumer_lag_records",
                         "Records behind the high watermark, by input partition")

    # -- lifecycle ---------------------------------------------------------------------

    def run(self) -> None:
        settings = self.settings
        gc.set_threshold(*GC_THRESHOLD)
        create_topics(settings, changelog_specs(settings.app_id, self.stages))
        self.producer = Producer({
            "bootstrap.servers": settings.bootstrap_servers,
            "transactional.id": transactional_id(settings),
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
            "partitioner": PARTITIONER,
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
        })
        self.producer.init_transactions(60)
        self.consumer = Consumer({
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": settings.app_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": settings.session_timeout_s * 1000,
            "heartbeat.interval.ms": max(1000, settings.session_timeout_s * 1000 // 3),
            "fetch.wait.max.ms": 100,
            "enable.partition.eof": False,
        })
        self.consumer.subscribe(
            sorted(self.stages_of), on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        try:
            while not self.stopping.is_set():
                if messages := self._next_batch():
                    self._process(messages)
        finally:
            self.ready.clear()
            self.consumer.close()
            self.producer.flush(10)
            self._close_stores(list(self.stores))

    def _next_batch(self) -> list[Message]:
        """What has arrived, up to a batch, without waiting for a batch to fill: waiting
        for a full batch would add the whole timeout to every hop of a quiet pipeline.
        Under load the fetched queue fills whole batches anyway."""
        first = self.consumer.poll(0.2)
        if first is None:
            return []
        return [first, *self.consumer.consume(self.settings.batch_max_records - 1, 0)]

    def stop(self) -> None:
        self.stopping.set()

    # -- rebalancing -------------------------------------------------------------------

    def _owned(self, partitions: list[TopicPartition]) -> set[tuple[StoreSpec, int]]:
        return {(spec, tp.partition) for tp in partitions
                for stage in self.stages_of[tp.topic] for spec in stage.stores}

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        started = time.monotonic()
        targets = {}
        for spec, partition in self._owned(partitions):
            if (spec.name, partition) not in self.stores:
                store = PartitionStore(
                    self.settings.state_dir / spec.name / str(partition), spec.ttl_s
                )
                with self._stores_lock:
                    self.stores[(spec.name, partition)] = store
                targets[(spec.changelog(self.settings.app_id), partition)] = store
        applied = restore(self.settings.bootstrap_servers, f"{self.settings.app_id}-restore",
                          targets, RESTORE_TIMEOUT_S)
        seconds = time.monotonic() - started
        log.info("assigned %d partitions; restored %d store partitions (%d records) in %.2fs",
                 len(partitions), len(targets), applied, seconds)
        self.metrics.set("topup_restore_seconds", seconds)
        self.metrics.observe("topup_restore_duration_seconds", seconds)
        self.ready.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Called only inside consume(), never with a transaction open.
        self.ready.clear()
        self._close_stores([(spec.name, p) for spec, p in self._owned(partitions)])

    def _close_stores(self, keys: list[tuple[str, int]]) -> None:
        with self._stores_lock:
            for key in keys:
                store = self.stores.pop(key, None)
                if store is not None:
                    store.close()

    def read_store(self, name: str, partition: int, key: str) -> tuple[bool, Any]:
        """For the HTTP surface: (owned here, committed value)."""
        with self._stores_lock:
            store = self.stores.get((name, partition))
            return (False, None) if store is None else (True, store.get(key))

    # -- processing --------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(record_of(message))
            elif error.fatal():
                raise KafkaException(error)
            else:
                # Transient (a broker away, a rebalance): librdkafka retries on its own.
                log.warning("consumer: %s", error)
        if not records:
            return
        batch_start: dict[tuple[str, int], int] = {}
        next_offsets: dict[tuple[str, int], int] = {}
        for record in records:
            where = (record.topic, record.partition)
            batch_start.setdefault(where, record.offset)
            next_offsets[where] = record.offset + 1
            self.metrics.inc("topup_records_consumed_total", topic=record.topic)
        self.producer.begin_transaction()
        try:
            pending = self.handle_batch(records, self._produce)
            encoded = encode_writes(pending)
            self._write_changelogs(encoded)
            commit_started = time.perf_counter()
            self._commit(next_offsets)
            self.metrics.observe("topup_transaction_commit_seconds",
                                 time.perf_counter() - commit_started)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if not error.txn_requires_abort():
                raise
            log.warning("transaction aborted, replaying the batch: %s", error)
            self.metrics.inc("topup_batches_aborted_total")
            self._retrying(lambda: self.producer.abort_transaction(30))
            self._rewind(batch_start)
            return
        self.apply_committed(encoded, pending)
        self.metrics.inc("topup_batches_committed_total")
        self._record_lag(next_offsets)

    def _record_lag(self, next_offsets: dict[tuple[str, int], int]) -> None:
        # cached=True reads the high watermark from the last fetch: no broker round trip.
        for (topic, partition), offset in next_offsets.items():
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(topic, partition), cached=True)
            if high >= 0:
                self.metrics.set("topup_consumer_lag_records", max(0, high - offset),
                                 topic=topic, partition=str(partition))

    def handle_batch(self, records: list[Record], emit: Callable[[Send], None]) -> Pending:
        """Handles `records` in order, each by every stage consuming its topic, passing
        each output to `emit`; returns the batch's state writes, not yet applied."""
        pending: Pending = {}
        for record in records:
            for stage in self.stages_of[record.topic]:
                for send in self._handle(stage, record, pending):
                    emit(send)
        return pending

    def _handle(
        self, stage: Stage, record: Record, pending: Pending
    ) -> list[Send]:
        stores = {spec.name: self.stores[(spec.name, record.partition)] for spec in stage.stores}
        views = {spec.name: _batch_writes(pending, (spec.name, record.partition))
                 for spec in stage.stores}
        ctx = Context(record, self.catalog, self.metrics, stores, views)
        try:
            decoded = stage.decode(record)
        except DecodeError as exc:
            ctx.dead_letter(exc.reason, str(exc))
            return ctx.sends
        started = time.perf_counter()
        try:
            stage.handle(ctx, decoded)
        except Exception as exc:
            # A bug, not bad input; it must not wedge the partition either. Nothing the
            # handler wrote or sent survives: the record is dead-lettered as it came.
            log.exception("processing failed for %s", record.where())
            self.metrics.inc("topup_processing_errors_total", topic=record.topic)
            ctx = Context(record, self.catalog, self.metrics, stores, views)
            ctx.dead_letter("BAD_PAYLOAD", f"processing failed: {type(exc).__name__}: {exc}")
            return ctx.sends
        self.metrics.observe("topup_stage_handle_seconds", time.perf_counter() - started,
                             stage=stage.name)
        for name, layer in ctx.layers.items():
            views[name].update(layer)
        return ctx.sends

    def _produce(self, send: Send) -> None:
        kwargs: dict[str, Any] = {"key": send.key, "value": send.value}
        if send.headers:
            kwargs["headers"] = send.headers
        if send.partition is not None:
            kwargs["partition"] = send.partition
        while True:
            try:
                self.producer.produce(send.topic, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _write_changelogs(self, encoded: Encoded) -> None:
        for (name, partition), items in encoded.items():
            topic = self.specs[name].changelog(self.settings.app_id)
            for key, raw in items:
                self._produce(Send(topic, key, raw, partition=partition))

    def _commit(self, next_offsets: dict[tuple[str, int], int]) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        metadata = self.consumer.consumer_group_metadata()
        self._retrying(lambda: self.producer.send_offsets_to_transaction(offsets, metadata, 30))
        self._retrying(lambda: self.producer.commit_transaction(30))

    def _retrying(self, call: Callable[[], None]) -> None:
        """Retriable errors (a broker away) are waited out: the transaction stays open and
        the call resumes it. Abortable and fatal errors go to the caller."""
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable() or error.txn_requires_abort() or error.fatal():
                    raise
                log.warning("transaction call will be retried: %s", error)
                time.sleep(RETRY_BACKOFF_S)

    def apply_committed(self, encoded: Encoded, pending: Pending) -> None:
        """A committed batch's writes into the local stores."""
        for where, items in encoded.items():
            store = self.stores.get(where)
            if store is not None:
                store.write(items)
                store.committed(pending[where])

    def _rewind(self, batch_start: dict[tuple[str, int], int]) -> None:
        for (topic, partition), offset in batch_start.items():
            # A partition no longer ours: its next owner starts from the committed offset.
            with contextlib.suppress(KafkaException):
                self.consumer.seek(TopicPartition(topic, partition, offset))


def encode_writes(pending: Pending) -> Encoded:
    return {where: [(key.encode(), encode_value(value)) for key, value in writes.items()]
            for where, writes in pending.items()}


def _batch_writes(pending: Pending, where: tuple[str, int]) -> BatchWrites:
    writes = pending.get(where)
    if writes is None:
        writes = pending[where] = BatchWrites()
    return writes


def record_of(message: Message) -> Record:
    _, timestamp = message.timestamp()
    return Record(
        topic=message.topic(),  # type: ignore[arg-type]
        partition=message.partition(),  # type: ignore[arg-type]
        offset=message.offset(),  # type: ignore[arg-type]
        key=message.key(),  # type: ignore[arg-type]
        value=message.value(),  # type: ignore[arg-type]
        timestamp_ms=timestamp,
        headers=list(message.headers() or []),
    )
