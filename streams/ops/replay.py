"""The whole topology in one process, fed the recorded input topics, writing nowhere.

A rebuild runs the worker's own code (`Worker.handle_batch`: its stages, contexts and
stores) over fresh RocksDB stores in a state dir of its own. What a stage sends to a topic
the worker consumes (the internal topics) comes back in a later batch, on the partition
Kafka's partitioner would pick; what it sends to any other topic is only counted. No
producer exists here, so no live topic, changelog or shadow, can receive a record: that
is how a replay "re-emits nothing", by construction rather than by care.

Inputs are fed in record-timestamp order across topics (then topic, partition, offset),
each with everything it leads to handled before the next: the closest single order to
how the live workers met them when inputs are not seconds-close. Where the live run's
outcome hung on a race between partitions (which velocity answer came back first, see
topology.md "Arrival order matters"), the replay decides one way and `verify` names
the difference. An internal record is stamped
with the timestamp of the input that led to it, not the wall clock, so a replay of the
same inputs is the same replay.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from collections.abc import Callable, Iterator
from pathlib import Path

from streams import topics
from streams.codecs import SchemaCatalog, default_catalog
from streams.config import Settings
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.runtime.context import Record, Send
from streams.runtime.worker import Worker
from streams.stages import all_stages
from streams.worker_config import runtime_config

# The topics the outside world writes, and the runtime's ticks: the record of time passing
# on quiet partitions (runtime/ticks.py), read back so that timers fire where they fired.
# Everything else the topology derives from these.
INPUT_TOPICS = (topics.ORDERS, topics.WEBHOOKS, topics.SETTLEMENTS, topics.CONTROL,
                topics.TICKS)

BatchHook = Callable[[int, int], None]  # (records handled, records published)


class ReplayTopology:
    """The worker's stages and fresh stores, fed batches by hand instead of by Kafka."""

    def __init__(self, settings: Settings, catalog: SchemaCatalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or default_catalog()
        stages = all_stages(settings, self.catalog, Metrics())
        self.worker = Worker(runtime_config(settings), stages, self.catalog, Metrics())
        self.worker.open_stores(range(settings.partitions))
        self._internal: deque[Record] = deque()
        self._offsets: Counter[tuple[str, int]] = Counter()
        self._now_ms = 0
        self.handled = 0
        self.published: Counter[str] = Counter()  # topic -> records a live run would send

    def run(self, inputs: list[Record], on_batch: BatchHook | None = None) -> None:
        ordered = deque(sorted(
            (self._placed(r) for r in inputs if r.topic in self.worker.stages_of),
            key=lambda r: (r.timestamp_ms, r.topic, r.partition, r.offset)))
        batch_max = self.settings.batch_max_records
        while ordered:
            # One input, then everything it leads to: the live hops take milliseconds
            # where inputs are seconds apart, so the live run met each input with the
            # effects of the earlier ones in place, and so does the replay.
            self._handle([ordered.popleft()], on_batch)
            while self._internal:
                self._handle(list(_take(self._internal, batch_max)), on_batch)

    def _handle(self, batch: list[Record], on_batch: BatchHook | None) -> None:
        self._now_ms = max([self._now_ms, *(r.timestamp_ms for r in batch)])
        pending = self.worker.handle_batch(batch, self._route)
        self.worker.apply_committed(self.worker.encode_writes(pending), pending)
        self.handled += len(batch)
        if on_batch is not None:
            on_batch(self.handled, sum(self.published.values()))

    def _placed(self, record: Record) -> Record:
        # A keyed input found on the wrong partition is forwarded by the live worker to the
        # right one (runtime/repartition.py); here it is simply handled where it belongs.
        if record.topic in self.worker.keyed and record.key is not None:
            right = partition_for(record.key, self.settings.partitions)
            if right != record.partition:
                return dataclasses.replace(record, partition=right)
        return record

    def _route(self, send: Send) -> None:
        self.published[send.topic] += 1
        if send.topic not in self.worker.stages_of:
            return
        partition = send.partition if send.partition is not None else partition_for(
            send.key or b"", self.settings.partitions)
        offset = self._offsets[(send.topic, partition)]
        self._offsets[(send.topic, partition)] = offset + 1
        stamp = send.timestamp_ms if send.timestamp_ms is not None else self._now_ms
        self._internal.append(Record(send.topic, partition, offset, send.key, send.value,
                                     stamp, send.headers or []))

    def table(self, name: str) -> dict[str, bytes]:
        """Every key and value of one store, all partitions, as stored."""
        rows: dict[str, bytes] = {}
        for partition in range(self.settings.partitions):
            store = self.worker.store(name, partition)
            if store is not None:
                rows.update((k.decode(), v) for k, v in store.raw_items())
        return rows

    def close(self) -> None:
        self.worker.close_stores()


def shadow_settings(settings: Settings, run_id: str, state_dir: Path) -> Settings:
    """The live settings with an application id and a state dir of the run's own."""
    return dataclasses.replace(settings, app_id=f"{settings.app_id}-rebuild-{run_id}",
                               state_dir=state_dir)


def _take(queue: deque[Record], n: int) -> Iterator[Record]:
    for _ in range(min(n, len(queue))):
        yield queue.popleft()
