"""The processing loop: consume a batch, handle it, commit it in one transaction.

One consumer (read_committed; KIP-848's incremental range assignment, or with
TOPUP_GROUP_PROTOCOL=classic the eager one, so co-partitioned topics land together, and a
partition number is handled only while every topic's is held here: copartition.py) and
one transactional producer per worker. Each batch is a transaction holding
every output, every changelog write and the consumed offsets; the batch's writes reach
the local stores only after the commit succeeded. An abortable failure aborts the
transaction, drops the batch's writes and rewinds the consumer to the batch's start.

Faults never end the process: every transactional call runs under a watchdog, and a call
that hangs or leaves the producer unusable (fenced, fatal, `_STATE`, an ambiguous commit)
drops the producer and the consumer's assignment and starts both afresh; whoever owns the
partitions next restores from committed state (topology.md, "Exactly-once under faults").
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams.codecs import DecodeError, SchemaCatalog
from streams.metrics import Metrics
from streams.partitioning import PARTITIONER
from streams.registry import RegistryUnavailable
from streams.runtime import crash_points
from streams.runtime.assignment_log import AssignmentLog
from streams.runtime.batch_policy import BatchPolicy
from streams.runtime.broker_reach import BrokerReach
from streams.runtime.changelog_topics import changelog_overrides, validate_replication
from streams.runtime.closed_stores import ClosedStores
from streams.runtime.config import RuntimeConfig
from streams.runtime.context import (
    BatchWrites,
    Context,
    Headers,
    Record,
    Send,
    SizeLimits,
)
from streams.runtime.copartition import Holdings
from streams.runtime.deadline import ClientUnusable, Stopping, Watchdog
from streams.runtime.family_migration import refuse_unmigrated
from streams.runtime.gathered import Gatherer
from streams.runtime.group_config import MAX_HEARTBEAT_MS, apply_group_settings
from streams.runtime.kafka_admin import admin_client, create_topics, max_message_bytes
from streams.runtime.layout import check_copartitioned, partition_counts
from streams.runtime.own_topics import TICKS, is_internal, repartition_topic
from streams.runtime.repartition import Repartitioner, keyed_inputs
from streams.runtime.restore import RestoreReport, last_stable_offsets, restore
from streams.runtime.stable_offsets import unstable_partitions
from streams.runtime.stage import Stage
from streams.runtime.standby import Standby
from streams.runtime.store import PartitionStore, StoreSpec, StoreView, encode_value, families
from streams.runtime.ticks import IdleTicker, decode_tick
from streams.runtime.topic_spec import TopicSpec

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = 1.0
RESTORE_TIMEOUT_S = 900.0
# One committed() call while waiting for stable offsets; after each timeout the
# coordinator is asked directly why (stable_offsets.py).
COMMITTED_TIMEOUT_S = 30.0
# Offsets unstable this many transaction timeouts long are held by no live transaction.
HANGING_AFTER_TXN_TIMEOUTS = 6
LAYOUT_WAIT_S = 30.0
# Bounded steps of a shutdown or of dropping a client: never worth waiting longer for.
CLOSE_TIMEOUT_S = 5.0
# Waited on the processing thread, once a second, only while no broker is reachable.
PROBE_TIMEOUT_S = 0.5
# Producer errors a record causes (its output is refused): retried once with a fresh
# producer, then the record is dead-lettered rather than replayed forever.
RECORD_ERRORS = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD,
})
MAX_REFUSED_TRACKED = 10_000
# Test hook only (tests/chaos): after this many committed batches, the worker SIGSTOPs
# itself between send_offsets_to_transaction and commit_transaction, once.
TEST_STOP_BEFORE_COMMIT = "TOPUP_TEST_STOP_BEFORE_COMMIT_AFTER_BATCHES"
# Handling a batch allocates many short-lived objects while the stores keep decoded
# states alive; the default young-generation threshold (700) walks them thousands of
# times a second. bench/HISTORY.md has the before and after.
GC_THRESHOLD = (100_000, 50, 100)

# Per store partition: the batch's writes; then, per partition store holding them (a
# family's, shared), as (key, value or None) bytes, each key under its store's prefix.
Pending = dict[tuple[str, int], BatchWrites]
Encoded = dict[tuple[str, int], list[tuple[bytes, bytes | None]]]


def transactional_id(settings: RuntimeConfig) -> str:
    """Stable across restarts of one worker (its state dir), so a restart fences its past
    self at once instead of waiting out the dead transaction's timeout."""
    where = hashlib.sha256(str(settings.state_dir.resolve()).encode()).hexdigest()[:12]
    return f"{settings.app_id}-{where}"


def changelog_specs(
    app_id: str, stages: Sequence[Stage], overrides: dict[str, str] | None = None
) -> tuple[TopicSpec[None], ...]:
    """The compacted changelog of every partition store: a family's once, shared."""
    stored = families(spec for stage in stages for spec in stage.stores)
    return tuple(TopicSpec(spec.changelog(app_id), None, compacted=True,
                           overrides={**(overrides or {}), **spec.changelog_config})
                 for spec in stored.values())


class Worker:
    def __init__(
        self,
        settings: RuntimeConfig,
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
        # A keyed input's misplaced records come back through its repartition topic, to
        # the same stages; the runtime's ticks go to the stages with timers.
        self.keyed = keyed_inputs(self.stages)
        for topic in self.keyed:
            self.stages_of[repartition_topic(topic)] = self.stages_of[topic]
        if tick_stages := [replace(stage, decode=decode_tick, handle=stage.on_tick)
                           for stage in self.stages if stage.on_tick is not None]:
            self.stages_of[TICKS] = tick_stages
        self.repartitioner: Repartitioner | None = None
        # What the group protocol gave this consumer; only complete numbers are handled.
        self.holdings = Holdings(self.stages_of)
        self.incremental = settings.group_protocol == "consumer"
        self.assignment_log = AssignmentLog()
        self.ticker = IdleTicker(settings.idle_advance_s)
        self.specs = {spec.name: spec for stage in self.stages for spec in stage.stores}
        # What is on disk and in the changelogs: a family's partition stores hold several
        # stores' keys; `stores` is by these names, `views` by the stages' own.
        self.stored = families(self.specs.values())
        self.members = {name: [spec for spec in self.specs.values()
                               if spec.stored_in.name == name] for name in self.stored}
        self.stores: dict[tuple[str, int], PartitionStore] = {}
        self.views: dict[tuple[str, int], StoreView] = {}
        self.closed = ClosedStores(settings.state_dir, settings.state_cleanup_delay_s)
        self.standby = (Standby(settings, self.stored, self.closed, metrics,
                                lambda path: self._closed([path]))
                        if settings.standby_replicas else None)
        # Store partitions being closed off the processing thread, by path.
        self._closing: dict[Path, threading.Thread] = {}
        # Changelog (topic, partition) -> the offset after this batch's last write there,
        # from the delivery reports: the checkpoint written with the batch's local writes.
        self._changelog_ends: dict[tuple[str, int], int] = {}
        # Input partitions with a lag series on /metrics, forgotten when they leave.
        self._lag_reported: set[tuple[str, int]] = set()
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self._stores_lock = threading.Lock()
        self.watchdog = Watchdog(settings.txn_call_timeout_s, self.stopping)
        self.batch_policy = BatchPolicy(settings.batch_max_records,
                                        settings.batch_target_ms / 1000)
        self.last_commit = time.monotonic()
        self.reach = BrokerReach()
        # When records in hand first went uncommitted (None: nothing in hand).
        self.uncommitted_since: float | None = None
        self._txn_open = False
        # Changelog partition -> offset restored up to, checked again before the first batch.
        self._restored_to: dict[tuple[str, int], int] = {}
        self._restored_stores: dict[tuple[str, int], PartitionStore] = {}
        # Records whose output a producer refused, and how often; and partitions handled
        # one record per transaction until past an offset, to find such a record.
        self._refused: dict[tuple[str, int, int], int] = {}
        self._isolate_until: dict[tuple[str, int], int] = {}
        self._record_error: KafkaError | None = None
        raw_hook = os.environ.get(TEST_STOP_BEFORE_COMMIT)
        self._test_stop_after = int(raw_hook) if raw_hook else None
        self._committed_batches = 0
        # Read from the broker at start: outputs over them are dead-lettered, not produced.
        self.size_limits = SizeLimits()
        self.directory = settings.directory()
        metrics.describe("topup_batches_committed_total", "Transactions committed")
        metrics.describe("topup_batches_aborted_total", "Transactions aborted and replayed")
        metrics.describe("topup_ticks_written_total", "Event-time ticks for idle partitions")
        metrics.describe("topup_restore_records", "Changelog records applied by the last restore")
        metrics.describe("topup_restore_seconds", "Duration of the last restore")
        metrics.describe("topup_restore_duration_seconds", "Store restore time on assignment")
        metrics.describe("topup_transaction_commit_seconds", "Time to commit one transaction")
        metrics.describe("topup_transaction_flush_seconds",
                         "The part of a commit spent waiting for the batch's records to be "
                         "acknowledged")
        metrics.describe("topup_changelog_partitions_written_total",
                         "Changelog partitions written, summed over transactions")
        metrics.describe("topup_stage_handle_seconds", "Handling time of one record, by stage")
        metrics.describe("topup_consumer_lag_records",
                         "Records behind the high watermark, by input partition this worker owns")
        metrics.describe("topup_client_recreations_total",
                         "Producer and consumer dropped and re-created after a fault")
        metrics.describe("topup_seconds_since_last_commit",
                         "Seconds since this worker last committed a transaction")
        metrics.describe("topup_restore_tail_catchups_total",
                         "Changelogs that moved after restore and were caught up")

    # -- lifecycle ---------------------------------------------------------------------

    def run(self) -> None:
        settings = self.settings
        begun = time.monotonic()
        gc.set_threshold(*GC_THRESHOLD)
        # The internal topics the runtime itself adds (repartition, ticks) as well.
        internal = tuple(spec for spec in settings.topics
                         if is_internal(spec.name) and spec.name in self.stages_of)
        changelogs = changelog_specs(settings.app_id, self.stages, changelog_overrides(settings))
        refuse_unmigrated(settings.client, settings.app_id, self.specs.values())
        validate_replication(settings, [spec.name for spec in changelogs])
        create_topics(settings.client, internal + changelogs, settings.partitions,
                      settings.replication_factor, settings.topic_retention_days)
        if self.incremental:
            apply_group_settings(settings)
        self.size_limits = SizeLimits(max_message_bytes(
            settings.client, [spec.name for spec in (*settings.topics, *changelogs)]))
        self.repartitioner = Repartitioner(self.keyed, self._checked_layout(), self.catalog,
                                           self.metrics, settings.alert_topic)
        prepared = time.monotonic()
        try:
            self._start_clients()
            # Where a start's time goes, before the group's assignment (logged apart).
            log.info("started: topics checked in %.2fs, producer fenced and consumer "
                     "subscribed in %.2fs", prepared - begun, time.monotonic() - prepared)
            while not self.stopping.is_set():
                try:
                    if messages := self._next_batch():
                        self._process(messages)
                    self._tick_idle_partitions()
                    if self.reach.probe_due():
                        self._probe_brokers()
                    if self._closing:
                        self._closing = {path: thread for path, thread in self._closing.items()
                                         if thread.is_alive()}
                    self.closed.remove_expired(time.monotonic())
                except ClientUnusable as exc:
                    self._recreate_clients(str(exc))
                except (KafkaException, TimeoutError) as exc:
                    # Out of a rebalance callback (a restore that met a leader change or
                    # ran out of time): the assignment is half done, so start afresh.
                    log.exception("consumer failed")
                    if self.stopping.wait(RETRY_BACKOFF_S):
                        break
                    self._recreate_clients(f"consumer: {exc}")
        except Stopping:
            log.info("stop requested while waiting for a client call")
        finally:
            log.info("stopping")
            self._shutdown()

    def _start_clients(self) -> None:
        """A fresh transactional producer and a consumer subscribed to the inputs. A broker
        away is waited out (init_transactions retried) until a stop is requested."""
        settings = self.settings
        while True:
            self.producer = Producer({
                **settings.client,
                "transactional.id": transactional_id(settings),
                "transaction.timeout.ms": settings.transaction_timeout_s * 1000,
                "partitioner": PARTITIONER,
                "linger.ms": 5,
                "queue.buffering.max.messages": 1_000_000,
                "on_delivery": self._on_delivery,
            })
            try:
                # Fences every earlier producer of this transactional id, aborting its
                # open transaction: a hung or zombie self can no longer commit.
                self.watchdog.run("init_transactions",
                                  lambda: self.producer.init_transactions(60), timeout_s=70)
                break
            except (KafkaException, ClientUnusable) as exc:
                log.warning("producer not ready, retrying: %s", exc)
                if self.stopping.wait(RETRY_BACKOFF_S):
                    raise Stopping("init_transactions") from exc
        if self.incremental:
            # KIP-848: the coordinator's range assignor co-partitions topics of equal
            # partition count and moves only what changes owner; liveness is the group's
            # (group_config.py).
            group: dict[str, Any] = {"group.protocol": "consumer",
                                     "group.remote.assignor": "range"}
        else:
            group = {"partition.assignment.strategy": "range",
                     "session.timeout.ms": settings.session_timeout_s * 1000,
                     # A survivor learns of a rebalance at its next heartbeat: a
                     # failover waits up to one interval after the broker noticed.
                     "heartbeat.interval.ms": min(MAX_HEARTBEAT_MS,
                                                  settings.session_timeout_s * 1000 // 3)}
        self.holdings.clear()
        self.consumer = Consumer({
            **settings.client,
            "group.id": settings.app_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Also makes committed() ask for stable offsets (KIP-447), see _on_assign.
            "isolation.level": "read_committed",
            **group,
            "fetch.wait.max.ms": settings.fetch_wait_max_ms,
            "enable.partition.eof": False,
            "error_cb": self.reach.on_error,
        })
        self.consumer.subscribe(
            sorted(self.stages_of), on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def _recreate_clients(self, reason: str) -> None:
        """Drop the producer and the consumer's assignment, then start both afresh. The
        open transaction is aborted by the new producer's fencing (or times out); the
        partitions' next owner, maybe this worker again, restores from committed state."""
        log.error("dropping producer and consumer, re-creating both: %s", reason)
        self.metrics.inc("topup_client_recreations_total")
        self.ready.clear()
        self._txn_open = False
        # The records in hand are dropped with the assignment; /health says "starting"
        # until the new consumer is assigned and restored.
        self.uncommitted_since = None
        self._close_consumer()
        self._forget_lag(list(self._lag_reported))
        # The new consumer's assignment decides what is ours: until then, no ticks.
        self.ticker.revoked(range(self.settings.partitions))
        self._close_stores(list(self.stores))
        self._start_clients()

    def _close_consumer(self) -> None:
        consumer = self.consumer
        try:
            self.watchdog.run("consumer.close", consumer.close, CLOSE_TIMEOUT_S, stoppable=False)
        except (KafkaException, ClientUnusable, RuntimeError) as exc:
            # Abandoned: its late callbacks find it is no longer self.consumer.
            log.warning("consumer not closed cleanly: %s", exc)
        self.consumer = _RETIRED

    def _shutdown(self) -> None:
        """Bounded: abort what can be aborted, leave the group, close the stores."""
        self.ready.clear()
        begun = time.monotonic()
        producer = getattr(self, "producer", None)
        if producer is not None and self._txn_open:
            with contextlib.suppress(KafkaException, ClientUnusable):
                self.watchdog.run("abort_transaction", lambda: producer.abort_transaction(5),
                                  CLOSE_TIMEOUT_S, stoppable=False)
        if getattr(self, "consumer", _RETIRED) is not _RETIRED:
            self._close_consumer()
        left = time.monotonic()
        if producer is not None:
            with contextlib.suppress(KafkaException, ClientUnusable):
                self.watchdog.run("producer.flush", lambda: producer.flush(5),
                                  CLOSE_TIMEOUT_S, stoppable=False)
        self._close_stores(list(self.stores))
        self._closed()
        if self.standby is not None:
            self.standby.stop()
        # A stop's own time: the partitions' next owner waits for the first figure.
        log.info("stopped: group left %.2fs after the loop ended, stores closed %.2fs "
                 "after that", left - begun, time.monotonic() - left)

    def _next_batch(self) -> list[Message]:
        """What has arrived, up to a batch, without waiting for a batch to fill: waiting
        for a full batch would add the whole timeout to every hop of a quiet pipeline.
        Under load the fetched queue fills whole batches anyway, bounded by the batch
        policy's latency target. While a record refused by the producer is being looked
        for, one record per transaction."""
        self.metrics.set("topup_seconds_since_last_commit", self.seconds_since_commit())
        first = self.consumer.poll(0.2)
        if first is None:
            return []
        if self._isolate_until:
            return [first]
        return [first, *self.consumer.consume(self.batch_policy.limit() - 1, 0)]

    def seconds_since_commit(self) -> float:
        return time.monotonic() - self.last_commit

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, why) for /health: not ready, a client call overdue, or records in hand
        left uncommitted past the stall threshold."""
        self.metrics.set("topup_seconds_since_last_commit", self.seconds_since_commit())
        if overdue := self.watchdog.overdue():
            name, seconds = overdue
            return False, {"status": "stuck", "reason": f"{name} running for {seconds:.0f}s"}
        since = self.uncommitted_since
        if since is not None and time.monotonic() - since > self.settings.stall_threshold_s:
            return False, {"status": "stuck", "reason": (
                f"records uncommitted for {time.monotonic() - since:.0f}s; last commit "
                f"{self.seconds_since_commit():.0f}s ago")}
        lost = self.reach.lost_for()
        if lost is not None and lost > self.settings.stall_threshold_s:
            return False, {"status": "stuck", "reason": (
                f"no broker reachable for {lost:.0f}s; last commit "
                f"{self.seconds_since_commit():.0f}s ago")}
        if not self.ready.is_set():
            return False, {"status": "starting", "reason": "partitions not assigned and restored"}
        return True, {"status": "ok"}

    def stop(self) -> None:
        self.stopping.set()

    def _checked_layout(self) -> dict[str, int]:
        """Every co-partitioned topic's partition count, once all agree (or
        TopicLayoutError): the inputs, internal topics and changelogs."""
        names = [*self.stages_of, *(spec.name for spec in
                                    changelog_specs(self.settings.app_id, self.stages))]
        admin, deadline = admin_client(self.settings.client), time.monotonic() + LAYOUT_WAIT_S
        while True:
            counts = partition_counts(admin.list_topics(timeout=30).topics, names)
            # Topics just created may take a moment to show in the metadata.
            if None not in counts.values() or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        check_copartitioned(counts, self.settings.partitions)
        return {name: count for name, count in counts.items() if count is not None}

    def _probe_brokers(self) -> None:
        """On a worker with nothing to fetch, the only way to learn a broker is back."""
        try:
            self.consumer.list_topics(min(self.stages_of), timeout=PROBE_TIMEOUT_S)
        except KafkaException:
            return
        self.reach.heard()

    def _tick_idle_partitions(self) -> None:
        """Ticks for partitions without input, in a transaction of their own."""
        if TICKS not in self.stages_of or not (ticks := self.ticker.due()):
            return
        timeout = self.settings.txn_call_timeout_s
        self.watchdog.run("begin_transaction", self.producer.begin_transaction)
        self._txn_open = True
        try:
            for send in ticks:
                self._produce(send)
            self._retrying("commit_transaction", lambda: self.producer.commit_transaction(timeout))
            self._txn_open = False
            self.reach.heard()
            self.metrics.inc("topup_ticks_written_total", len(ticks))
        except KafkaException as exc:
            if not exc.args[0].txn_requires_abort():
                raise ClientUnusable(f"tick commit_transaction: {exc.args[0]}") from exc
            # The next idle spell ticks again, by the time elapsed since this one.
            log.warning("tick transaction aborted: %s", exc.args[0])
            try:
                self._retrying("abort_transaction",
                               lambda: self.producer.abort_transaction(timeout))
            except KafkaException as abort_exc:
                raise ClientUnusable(f"abort failed: {abort_exc.args[0]}") from abort_exc
            self._txn_open = False

    # -- rebalancing -------------------------------------------------------------------

    def _owned(self, partitions: list[TopicPartition]) -> set[tuple[StoreSpec, int]]:
        return {(spec.stored_in, tp.partition) for tp in partitions
                for stage in self.stages_of[tp.topic] for spec in stage.stores}

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self.consumer:
            return  # a dropped consumer's late callback
        started = time.monotonic()
        # Taken explicitly, so that a half group can be paused before it is fetched.
        if self.incremental:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        self.assignment_log.write("assigned", ((tp.topic, tp.partition) for tp in partitions))
        if not partitions:
            # KIP-848 confirms each change of a member's epoch, with nothing new for it.
            self.ready.set()
            return
        completed = self.holdings.add((tp.topic, tp.partition) for tp in partitions)
        if waiting := [tp for tp in partitions if not self.holdings.is_complete(tp.partition)]:
            # Its twin on another topic is still owned, and processed, by another worker.
            consumer.pause(waiting)
            log.info("holding %d partitions paused until the rest of their co-partitioned "
                     "group arrives: numbers %s", len(waiting), sorted(self.holdings.partial()))
        group = [TopicPartition(topic, p) for topic, p in self.holdings.held(completed)]
        log.info("assignment of %d partitions received, completing %s; restoring after "
                 "stable offsets", len(partitions), sorted(completed))
        targets = {}
        owned = self._owned(group)
        if self.standby is not None:
            # Closed by the standby before they are opened here: one writer per RocksDB.
            self.standby.release((spec.name, partition) for spec, partition in owned)
        for spec, partition in owned:
            if (spec.name, partition) not in self.stores:
                store = self._open_store(spec, partition)
                targets[(store.changelog, partition)] = store
        report = (self._restore_after_stable_offsets(consumer, group, targets) if group
                  else RestoreReport())
        if group:
            consumer.resume(group)
        # Store partitions left on disk by an earlier run and not ours now age out too.
        self.closed.adopt_leftovers([store.path for store in self.stores.values()], started)
        seconds = time.monotonic() - started
        self.ticker.assigned(completed)
        self.assignment_log.write("completed", ((topic, p) for topic, p in
                                                self.holdings.held(completed)))
        log.info("assigned %d partitions; restored %d store partitions (%d records) in %.2fs; "
                 "%s", len(partitions), len(targets), report.records, seconds, report.describe())
        self.metrics.set("topup_restore_records", report.records)
        self.metrics.set("topup_restore_seconds", seconds)
        self.metrics.observe("topup_restore_duration_seconds", seconds)
        if self.standby is not None:
            # Here, not at a revocation: an eager rebalance revokes everything and hands
            # most of it back, and a standby opening all of it in between would delay this
            # very assignment (release waits for it). Stores still closing in the
            # background are waited for: RocksDB allows one opener.
            self._closed()
            self.standby.follow_all_but(self.stores)
        self.ready.set()

    def _restore_after_stable_offsets(
        self, consumer: Consumer, partitions: list[TopicPartition],
        targets: dict[tuple[str, int], PartitionStore],
    ) -> RestoreReport:
        """Restore only once no transaction of a former owner can still commit offsets for
        these partitions (KIP-447; the argument is in topology.md): committed() under
        read_committed asks the coordinator for stable offsets and waits while a former
        owner's transactional offset commit is pending. The changelogs' last stable
        offsets are measured after that, and checked again before the first batch."""
        started = time.monotonic()
        deadline = started + RESTORE_TIMEOUT_S
        warned_hanging, stuck_while_stable = False, 0
        while True:
            try:
                consumer.committed(partitions, timeout=COMMITTED_TIMEOUT_S)
                break
            except KafkaException as exc:
                if time.monotonic() > deadline or self.stopping.is_set():
                    raise
                # The timeout says nothing of why: the coordinator, asked afresh, does.
                unstable = unstable_partitions(self.settings, partitions, COMMITTED_TIMEOUT_S)
                if unstable == []:
                    # Stable for the coordinator, yet this consumer got no answer twice
                    # (once may be a commit resolved just after the call timed out): its
                    # own request is stuck, as with a stale coordinator connection after a
                    # broker restart. Out of the callback, the consumer is re-created.
                    stuck_while_stable += 1
                    if stuck_while_stable >= 2:
                        log.warning("committed offsets are stable at the coordinator but "
                                    "committed() timed out: re-creating the consumer (%s)",
                                    exc)
                        raise
                    log.warning("committed() timed out, the coordinator reports stable "
                                "offsets: asking once more (%s)", exc)
                    continue
                stuck_while_stable = 0
                if unstable is None:
                    log.warning("waiting for stable committed offsets (coordinator not "
                                "answering): %s", exc)
                    continue
                waited = time.monotonic() - started
                where = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in unstable[:5])
                log.warning("waiting for stable committed offsets: a transaction still "
                            "holds offsets of %d partitions (%s) after %.0fs",
                            len(unstable), where, waited)
                if not warned_hanging and waited > HANGING_AFTER_TXN_TIMEOUTS * max(
                        self.settings.transaction_timeout_s, 1):
                    warned_hanging = True
                    # No live transaction outlasts its timeout: the coordinator aborts it.
                    # Restoring anyway could count a batch twice, so the wait goes on.
                    log.error("offsets of %s stay unstable %.0fs, far past the transaction "
                              "timeout (%ds): a hanging transaction is likely (its "
                              "coordinator completed it without writing its markers). Find "
                              "and abort it with kafka-transactions.sh find-hanging / abort; "
                              "this worker keeps waiting", where, waited,
                              self.settings.transaction_timeout_s)
        log.info("committed offsets stable after %.2fs", time.monotonic() - started)
        client = dict(self.settings.client)
        report = restore(client, f"{self.settings.app_id}-restore", targets, RESTORE_TIMEOUT_S)
        # Where the restore stopped, measured by it after the offsets were stable.
        self._restored_to.update(report.ends)
        self._restored_stores.update(targets)
        return report

    def _catch_up_moved_changelogs(self) -> None:
        """Before the first batch after a restore: a changelog whose last stable offset
        moved since was written by a late commit; restore its tail before handling."""
        restored, stores = self._restored_to, self._restored_stores
        self._restored_to, self._restored_stores = {}, {}
        open_stores = set(map(id, self.stores.values()))
        restored = {cl: end for cl, end in restored.items() if id(stores[cl]) in open_stores}
        client = dict(self.settings.client)
        now = last_stable_offsets(client, list(restored))
        moved = {cl: end for cl, end in restored.items() if now.get(cl, 0) > end}
        if not moved:
            return
        log.warning("changelogs moved after restore, catching up: %s", sorted(moved))
        self.metrics.inc("topup_restore_tail_catchups_total", len(moved))
        # Each store restores from its checkpoint, where the first restore left it: the tail.
        restore(client, f"{self.settings.app_id}-restore",
                {cl: stores[cl] for cl in moved}, RESTORE_TIMEOUT_S)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self.consumer:
            return  # a dropped consumer's late callback
        # Called only inside consume(), never with a transaction open.
        self.assignment_log.write("revoked", ((tp.topic, tp.partition) for tp in partitions))
        self._forget_lag((tp.topic, tp.partition) for tp in partitions)
        released = self.holdings.remove((tp.topic, tp.partition) for tp in partitions)
        if self.incremental:
            consumer.incremental_unassign(partitions)
            # What is left of a broken group waits for its twins, as on assignment.
            if left := self.holdings.held(released):
                consumer.pause([TopicPartition(topic, p) for topic, p in left])
        else:
            self.ready.clear()
            consumer.unassign()
        self.ticker.revoked(released)
        # Closing a RocksDB flushes it (0.3-0.8 s for a few partitions, measured): under the
        # incremental protocol the partitions kept here are processing meanwhile. On a
        # stop, this runs inside consumer.close(), before the group is left: flushed in
        # the foreground, a million orders' stores held the leave past close's bound, and
        # the partitions' next owner waited for the session to expire (6 s, measured).
        # _shutdown waits for these closes after the group is left.
        given_away = [(name, p) for name in self.stored for p in released]
        self._close_stores(given_away, in_background=self.incremental or self.stopping.is_set())
        if self.incremental and self.standby is not None and not self.stopping.is_set():
            # No assignment follows a revocation under KIP-848 to start the standby (as
            # it does under the eager protocol): kept warm from here, opened by the
            # standby once their closes above are done.
            self.standby.follow(given_away)

    def _close_stores(self, keys: list[tuple[str, int]], in_background: bool = False) -> None:
        """Closes store partitions, kept on disk until `closed` removes them; in the
        background, they are out of `stores` at once and closed on a thread of their own."""
        with self._stores_lock:
            gone = [store for key in keys if (store := self.stores.pop(key, None)) is not None]
            for name, partition in keys:
                for spec in self.members.get(name, ()):
                    self.views.pop((spec.name, partition), None)
        for store in gone:
            if in_background:
                thread = threading.Thread(target=self._close_store, args=(store,), daemon=True,
                                          name=f"close {store.path}")
                self._closing[store.path] = thread
                thread.start()
            else:
                self._close_store(store)

    def _close_store(self, store: PartitionStore) -> None:
        store.close()
        self.closed.closed(store.path, time.monotonic())

    def _closed(self, paths: Iterable[Path] | None = None) -> None:
        """Waits until these store partitions (all, by default) are closed on disk."""
        for path in list(self._closing) if paths is None else paths:
            if (thread := self._closing.pop(path, None)) is not None:
                thread.join()

    def _open_store(self, spec: StoreSpec, partition: int) -> PartitionStore:
        path = spec.path(self.settings.state_dir, partition)
        # Handed back before its close finished: RocksDB allows one opener.
        self._closed([path])
        self.closed.reopened(path)
        members = self.members[spec.name]
        store = PartitionStore(path, spec.ttl_s, spec.changelog(self.settings.app_id),
                               stores=len(members))
        with self._stores_lock:
            self.stores[(spec.name, partition)] = store
            for member in members:
                self.views[(member.name, partition)] = StoreView(store, member.key_prefix)
        return store

    def open_stores(self, partitions: Iterable[int]) -> None:
        """Every store of every stage at `partitions`, as they are on disk, not restored:
        for running the stages without Kafka (streams.runtime.testing)."""
        for partition in partitions:
            for spec in self.stored.values():
                if (spec.name, partition) not in self.stores:
                    self._open_store(spec, partition)

    def store(self, name: str, partition: int) -> StoreView | None:
        """A store partition held here (its committed state), or None."""
        with self._stores_lock:
            return self.views.get((name, partition))

    def consumes(self, topic: str) -> bool:
        """Whether a stage here reads `topic` (an input, a repartition topic or ticks)."""
        return topic in self.stages_of

    def close_stores(self) -> None:
        with self._stores_lock:
            for store in self.stores.values():
                store.close()
            self.stores.clear()
            self.views.clear()

    def read_store(self, name: str, partition: int, key: str) -> tuple[bool, Any]:
        """For the HTTP surface: (owned here, committed value)."""
        with self._stores_lock:
            store = self.views.get((name, partition))
            return (False, None) if store is None else (True, store.get(key))

    # -- processing --------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(record_of(message))
            elif error.fatal():
                raise ClientUnusable(f"consumer: {error}")
            else:
                # Transient (a broker away, a rebalance): librdkafka retries on its own.
                log.warning("consumer: %s", error)
        if records:
            self.reach.heard()
        if not (records := self._only_complete(records)):
            return
        if self._restored_to:
            self._catch_up_moved_changelogs()
        batch_start: dict[tuple[str, int], int] = {}
        next_offsets: dict[tuple[str, int], int] = {}
        for record in records:
            where = (record.topic, record.partition)
            batch_start.setdefault(where, record.offset)
            next_offsets[where] = record.offset + 1
            self.metrics.inc("topup_records_consumed_total", topic=record.topic)
            if record.topic != TICKS:
                self.ticker.seen(record.partition)
        # Registry schemas are fetched (an unreachable registry waited out) before the
        # transaction begins, so the wait cannot run into the transaction timeout; past
        # a bounded wait the batch is replayed, so the consumer keeps polling (group
        # membership, stop requests) while the registry stays away.
        try:
            self.catalog.prefetch(record.value for record in records)
        except RegistryUnavailable:
            self._rewind(batch_start)
            return
        if self.repartitioner is not None:
            self.repartitioner.begin()
        self._changelog_ends.clear()
        if self.uncommitted_since is None:
            self.uncommitted_since = time.monotonic()
        self._record_error = None
        self.watchdog.run("begin_transaction", self.producer.begin_transaction)
        self._txn_open = True
        handling: list[Record] = []
        try:
            handle_started = time.perf_counter()
            pending = self.handle_batch(records, self._produce, handling)
            encoded = self.encode_writes(pending)
            self._write_changelogs(encoded)
            self.metrics.inc("topup_changelog_partitions_written_total",
                             sum(1 for items in encoded.values() if items))
            commit_started = time.perf_counter()
            self._commit(next_offsets)
            commit_s = time.perf_counter() - commit_started
            self.metrics.observe("topup_transaction_commit_seconds", commit_s)
            self.batch_policy.observed(len(records), commit_started - handle_started, commit_s)
        except KafkaException as exc:
            self._failed(exc.args[0], records, handling, batch_start, next_offsets)
            return
        self._txn_open = False
        self.last_commit = time.monotonic()
        self.uncommitted_since = None
        self.reach.heard()
        crash_points.reached(crash_points.AFTER_COMMIT)
        # The commit flushed every record; this serves the delivery reports still queued.
        self.producer.poll(0)
        self.apply_committed(encoded, pending, self._changelog_ends)
        if self.repartitioner is not None:
            self.repartitioner.committed()
        self.metrics.inc("topup_batches_committed_total")
        self._committed_batches += 1
        self.assignment_log.write("processed", next_offsets)
        for where, offset in next_offsets.items():
            if self._isolate_until.get(where, offset + 1) <= offset:
                del self._isolate_until[where]
        self._record_lag(next_offsets)

    def _only_complete(self, records: list[Record]) -> list[Record]:
        """Records of a partition number not held whole here (half a group, or one revoked
        while the batch was fetched) are put back unhandled: its new owner, or this worker
        once the group is whole, reads them from the committed offset or this one."""
        kept: list[Record] = []
        put_back: dict[tuple[str, int], int] = {}
        for record in records:
            if self.holdings.is_complete(record.partition):
                kept.append(record)
            else:
                put_back.setdefault((record.topic, record.partition), record.offset)
        if put_back:
            self._rewind(put_back)
        return kept

    def _record_lag(self, next_offsets: dict[tuple[str, int], int]) -> None:
        # cached=True reads the high watermark from the last fetch: no broker round trip.
        for (topic, partition), offset in next_offsets.items():
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(topic, partition), cached=True)
            if high >= 0:
                self.metrics.set("topup_consumer_lag_records", max(0, high - offset),
                                 topic=topic, partition=str(partition))
                self._lag_reported.add((topic, partition))

    def _forget_lag(self, partitions: Iterable[tuple[str, int]]) -> None:
        """A partition's lag is its owner's to report: another worker's now."""
        for topic, partition in set(partitions) & self._lag_reported:
            self.metrics.forget("topup_consumer_lag_records", topic=topic,
                                partition=str(partition))
            self._lag_reported.discard((topic, partition))

    def _failed(self, error: KafkaError, records: list[Record], handling: list[Record],
                batch_start: dict[tuple[str, int], int],
                next_offsets: dict[tuple[str, int], int]) -> None:
        """A failed transaction: replay the batch after an abort, or with a fresh producer
        when this one is unusable. A record whose output is refused is replayed once, then
        looked for one record per transaction and dead-lettered (see _handle)."""
        caused_by_record = error.code() in RECORD_ERRORS or (
            self._record_error is not None and self._record_error.code() in RECORD_ERRORS)
        if caused_by_record:
            if len(records) == 1 or (handling and error.code() in RECORD_ERRORS):
                # Known culprit: produce() refused its output synchronously.
                culprit = handling[-1] if handling else records[0]
                key = (culprit.topic, culprit.partition, culprit.offset)
                self._refused[key] = self._refused.get(key, 0) + 1
                if len(self._refused) > MAX_REFUSED_TRACKED:
                    del self._refused[next(iter(self._refused))]  # the oldest
                log.warning("output of %s refused (%d): %s", culprit.where(),
                            self._refused[key], error)
            else:
                self._isolate_until.update(next_offsets)
                log.warning("a record's output was refused, isolating the batch: %s", error)
        self.metrics.inc("topup_batches_aborted_total")
        self._rewind(batch_start)
        if caused_by_record or not error.txn_requires_abort() or error.fatal():
            raise ClientUnusable(f"producer: {error}")
        log.warning("transaction aborted, replaying the batch: %s", error)
        try:
            self._retrying("abort_transaction", lambda: self.producer.abort_transaction(30))
        except KafkaException as exc:
            raise ClientUnusable(f"abort failed: {exc.args[0]}") from exc
        self._txn_open = False

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        # Served inside flush/commit: a refused output fails the transaction, and this
        # says whether a record (its size, its contents) was the cause.
        if error is not None and error.code() in RECORD_ERRORS:
            self._record_error = error

    def handle_batch(self, records: list[Record], emit: Callable[[Send], None],
                     handling: list[Record] | None = None) -> Pending:
        """Handles `records` in order, each by every stage consuming its topic, passing
        each output to `emit`, and the items gathered (streams.runtime.gathered) once all
        are handled; returns the batch's state writes, not yet applied. `handling`
        receives each record as it starts, to name the culprit of an error."""
        pending: Pending = {}
        gatherer = Gatherer()
        for consumed in records:
            record: Record | None = consumed
            if self.repartitioner is not None:
                record, forwards = self.repartitioner.route(consumed)
                for send in forwards:
                    emit(send)
            if record is None:
                continue
            if handling is not None:
                handling.append(record)
            for stage in self.stages_of[record.topic]:
                for send in self._handle(stage, record, pending, gatherer):
                    emit(send)
        if handling is not None:
            # A gathered record has no single cause: if produce() refuses one, naming the
            # last record handled would dead-letter an innocent one, so the batch is
            # isolated instead, which finds the cause one record per transaction.
            handling.clear()
        for send in gatherer.sends(self.size_limits):
            emit(send)
        # The batch's per-record counts and timings reach prometheus-client in one go.
        self.metrics.flush()
        return pending

    def _handle(
        self, stage: Stage, record: Record, pending: Pending, gatherer: Gatherer
    ) -> list[Send]:
        stores = {spec.name: self.views[(spec.name, record.partition)] for spec in stage.stores}
        views = {spec.name: _batch_writes(pending, (spec.name, record.partition))
                 for spec in stage.stores}
        outputs = frozenset(stage.outputs)
        ctx = Context(record, self.catalog, self.metrics, stores, views, limits=self.size_limits,
                      directory=self.directory, outputs=outputs)
        refused = self._refused.get((record.topic, record.partition, record.offset), 0)
        if refused >= 2:
            # Its output was refused by the broker twice, with a fresh producer: the
            # record goes to the DLQ as it came instead of failing every replay.
            if refused == 2:
                ctx.dead_letter("BAD_PAYLOAD", "output refused by Kafka (too large or invalid)")
                return ctx.sends
            # Even its dead letter was refused (the record alone is near the limit): the
            # dead letter points at the original, which stays in its source topic.
            size = len(record.value or b"")
            bare = Context(dataclasses.replace(record, value=b""), self.catalog, self.metrics,
                           stores, views, limits=self.size_limits, directory=self.directory,
                           outputs=outputs)
            bare.dead_letter("BAD_PAYLOAD", f"output refused by Kafka; the {size}-byte "
                             "original is at the source topic, partition and offset")
            return bare.sends
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
            ctx = Context(record, self.catalog, self.metrics, stores, views,
                          limits=self.size_limits, directory=self.directory, outputs=outputs)
            ctx.dead_letter("BAD_PAYLOAD", f"processing failed: {type(exc).__name__}: {exc}")
            return ctx.sends
        self.metrics.observe("topup_stage_handle_seconds", time.perf_counter() - started,
                             stage=stage.name)
        for name, layer in ctx.layers.items():
            views[name].update(layer)
        gatherer.add(ctx.gathered)
        return ctx.sends

    def _produce(self, send: Send, on_delivery: Callable[..., None] | None = None) -> None:
        extra: dict[str, Any] = {}
        if send.headers:
            extra["headers"] = send.headers
        if send.timestamp_ms is not None:
            extra["timestamp"] = send.timestamp_ms
        self._produce_raw(send.topic, send.key, send.value,
                          -1 if send.partition is None else send.partition, on_delivery, extra)

    def _produce_raw(self, topic: str, key: bytes | None, value: bytes | None, partition: int,
                     on_delivery: Callable[..., None] | None = None,
                     extra: dict[str, Any] | None = None) -> None:
        """`partition` -1: the partitioner's choice; `on_delivery` None: the producer's
        default report. The first five arguments go by position: keywords cost a dict and
        a parse per record, about 1.5 µs of the 2.2 a changelog record cost, and a batch
        writes some 30 changelog records per order (bench/HISTORY.md)."""
        while True:
            try:
                if extra:
                    self.producer.produce(topic, value, key, partition, on_delivery, **extra)
                else:
                    self.producer.produce(topic, value, key, partition, on_delivery)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _write_changelogs(self, encoded: Encoded) -> None:
        for (name, partition), items in encoded.items():
            if not items:
                continue
            topic = self.stored[name].changelog(self.settings.app_id)
            for key, raw in items[:-1]:
                self._produce_raw(topic, key, raw, partition)
            # One producer writes a partition in order, so the last record's offset
            # covers the batch's writes there: only it needs a delivery report.
            key, raw = items[-1]
            self._produce_raw(topic, key, raw, partition, self._delivered)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            # A delivered message always has its topic, partition and offset.
            where = (cast(str, message.topic()), cast(int, message.partition()))
            end = cast(int, message.offset()) + 1
            self._changelog_ends[where] = max(end, self._changelog_ends.get(where, 0))

    def _commit(self, next_offsets: dict[tuple[str, int], int]) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        metadata = self.consumer.consumer_group_metadata()
        timeout = self.settings.txn_call_timeout_s
        # commit_transaction would flush as well; flushing first shows apart how long the
        # records take to be acknowledged. librdkafka sends one partition per request, five
        # in flight per broker, so that grows with the partitions a batch writes (mostly
        # changelogs, bench/HISTORY.md).
        flush_started = time.perf_counter()
        left = self.watchdog.run("flush", lambda: self.producer.flush(timeout),
                                 timeout_s=timeout + 1)
        if left:
            # As a commit_transaction that kept failing until its deadline.
            raise ClientUnusable(f"{left} records not acknowledged within {timeout}s")
        self.metrics.observe("topup_transaction_flush_seconds",
                             time.perf_counter() - flush_started)
        self._retrying("send_offsets_to_transaction",
                       lambda: self.producer.send_offsets_to_transaction(offsets, metadata,
                                                                         timeout))
        self._test_stop_before_commit()
        try:
            self._retrying("commit_transaction",
                           lambda: self.producer.commit_transaction(timeout))
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.txn_requires_abort():
                raise
            # Whether it committed is unknown: only a fresh producer and a restore from
            # committed state are sure to be right.
            raise ClientUnusable(f"commit_transaction: {error}") from exc

    def _retrying(self, name: str, call: Callable[[], None]) -> None:
        """Retriable errors (a broker away) are waited out, but only until the call's
        deadline: the transaction stays open and the call resumes it. Abortable and fatal
        errors go to the caller; a deadline passed is ClientUnusable."""
        deadline = time.monotonic() + self.settings.txn_call_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientUnusable(f"{name} kept failing for {self.watchdog.timeout_s}s")
            try:
                self.watchdog.run(name, call, timeout_s=left)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable() or error.txn_requires_abort() or error.fatal():
                    raise
                log.warning("%s will be retried: %s", name, error)
                if self.stopping.wait(RETRY_BACKOFF_S):
                    raise Stopping(name) from exc

    def _test_stop_before_commit(self) -> None:
        """Test hook (tests/chaos): freeze like a GC pause or a VM stall would, at the
        worst moment, once; the test resumes (SIGCONT) or kills the process."""
        if self._test_stop_after is not None and self._committed_batches >= self._test_stop_after:
            self._test_stop_after = None
            log.warning("test hook: stopping before commit_transaction")
            os.kill(os.getpid(), signal.SIGSTOP)

    def apply_committed(self, encoded: Encoded, pending: Pending,
                        changelog_ends: dict[tuple[str, int], int] | None = None) -> None:
        """A committed batch's writes into the local stores, each store partition's with
        its changelog checkpoint (from `changelog_ends`) in one write batch. Without
        `changelog_ends` (no Kafka, as in streams.runtime.testing) no checkpoint is written."""
        for n, (where, items) in enumerate(encoded.items()):
            store = self.stores.get(where)
            if store is None:
                continue
            if n == 1:
                crash_points.reached(crash_points.DURING_LOCAL_WRITE)
            if changelog_ends is None:
                end = None
            elif (end := changelog_ends.get((store.changelog, where[1]))) is None and items:
                # Never guess ahead: without the offset the checkpoint stays where it
                # was, and the next restore replays these records again, harmlessly.
                log.warning("no delivery report for %s[%d]; checkpoint not advanced",
                            store.changelog, where[1])
            store.write(items, end)
        for where, writes in pending.items():
            if (view := self.views.get(where)) is not None:
                view.committed(writes)

    def encode_writes(self, pending: Pending) -> Encoded:
        """The batch's writes by the partition store holding them, keys under their
        store's prefix."""
        encoded: Encoded = {}
        for (name, partition), writes in pending.items():
            spec = self.specs[name]
            items = encoded.setdefault((spec.stored_in.name, partition), [])
            prefix = spec.key_prefix
            items += [((prefix + key).encode(), encode_value(value))
                      for key, value in writes.items()]
        return encoded

    def _rewind(self, batch_start: dict[tuple[str, int], int]) -> None:
        for (topic, partition), offset in batch_start.items():
            # A partition no longer ours: its next owner starts from the committed offset.
            with contextlib.suppress(KafkaException):
                self.consumer.seek(TopicPartition(topic, partition, offset))


class _Retired:
    """Stands for a dropped consumer: callbacks compare against self.consumer."""


_RETIRED: Any = _Retired()


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
        key=message.key(),
        value=message.value(),
        timestamp_ms=timestamp,
        # A consumed message's headers are a list of (str, bytes), never the dict the
        # producer also accepts.
        headers=cast(Headers, list(message.headers() or [])),
    )
