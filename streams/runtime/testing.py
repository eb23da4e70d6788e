"""Stages run without Kafka by the worker's own batch code, as Kafka Streams'
TopologyTestDriver runs a topology.

Records piped in are handled in batches by `Worker.handle_batch` (the same decode, contexts,
dead letters and stores as in production), and each batch's writes are applied to the
RocksDB stores as after a commit (`encode_writes`, `apply_committed`). What a stage sends
to a topic a stage consumes comes back in a later batch, on the partition Kafka's default
partitioner picks, before new input: as it would once committed. Every send is kept for
`read_output` and counted in `sent`. A send to a topic its stage does not declare raises
here (UndeclaredOutput) instead of being dead-lettered. Nothing is produced and nothing
committed, and the runtime's repartitioning is not run (there is no consumer assignment to
be wrong about).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from streams import wire
from streams.codecs import SchemaCatalog
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.runtime.config import RuntimeConfig
from streams.runtime.context import Headers, Record, Send, UndeclaredOutput
from streams.runtime.own_topics import TICKS
from streams.runtime.stage import Stage
from streams.runtime.ticks import tick_value
from streams.runtime.worker import Worker


class TopologyTestDriver:
    def __init__(
        self,
        config: RuntimeConfig,
        stages: Sequence[Stage],
        catalog: SchemaCatalog,
        metrics: Metrics | None = None,
        create_time: Callable[[Record], int] | None = None,
        retain_outputs: bool = True,
    ) -> None:
        """`create_time`: the timestamp of a record a stage sent, given the record being
        handled; by default that record's own, so a run is deterministic.
        `retain_outputs=False` only counts what is sent (for long runs: the bench)."""
        self.catalog = catalog
        self.config = config
        self.worker = Worker(config, stages, catalog, metrics or Metrics())
        self.partitions = config.partitions
        self.worker.open_stores(range(self.partitions))
        self._create_time = create_time or (lambda record: record.timestamp_ms)
        self._internal: deque[Record] = deque()
        self._offsets: dict[tuple[str, int], int] = {}
        self._outputs: dict[str, list[Send]] = {}
        self._retain = retain_outputs
        self.sent: dict[str, int] = {}
        self._handling: Record | None = None

    # -- input -------------------------------------------------------------------------

    def pipe(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        """One record on `topic` (on its key's partition unless given), handled with all it
        leads to."""
        if partition is None:
            partition = partition_for(key or b"", self.partitions)
        self.pipe_records([self._record(topic, partition, key, value, timestamp_ms, headers)])

    def tick(self, partition: int, advance_ms: int, timestamp_ms: int) -> None:
        """The runtime's tick for a quiet partition: its stages with timers advance by
        `advance_ms` of event time."""
        self.pipe(TICKS, None, tick_value(advance_ms), timestamp_ms, partition=partition)

    def pipe_records(self, records: Iterable[Record]) -> None:
        """Records as consumed, in this order, in batches of at most `batch_max_records`,
        each batch after what earlier ones sent to the stages."""
        pending = deque(records)
        batch_max = self.config.batch_max_records
        while pending or self._internal:
            batch = _take(self._internal, batch_max)
            batch += _take(pending, batch_max - len(batch))
            self._handle_batch(batch)

    def _handle_batch(self, batch: list[Record]) -> None:
        handling: list[Record] = []

        def emit(send: Send) -> None:
            self._sent(send, handling[-1] if handling else batch[0])

        written = self.worker.handle_batch(batch, emit, handling)
        self.worker.apply_committed(self.worker.encode_writes(written), written)

    def _sent(self, send: Send, cause: Record) -> None:
        if send.topic == self.config.dead_letter_topic and send.value is not None:
            error = self.catalog.decode("DeadLetter", send.value)["error"]
            # In production a wiring bug costs a dead letter (maybe a payment's): here it
            # fails the test that found it.
            if UndeclaredOutput.__name__ in error:
                raise UndeclaredOutput(f"{cause.where()}: {error}")
        self.sent[send.topic] = self.sent.get(send.topic, 0) + 1
        if self._retain:
            self._outputs.setdefault(send.topic, []).append(send)
        if not self.worker.consumes(send.topic):
            return
        partition = send.partition if send.partition is not None else partition_for(
            send.key or b"", self.partitions)
        timestamp = send.timestamp_ms if send.timestamp_ms is not None else (
            self._create_time(cause))
        self._internal.append(self._record(send.topic, partition, send.key, send.value,
                                           timestamp, send.headers))

    def _record(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
                timestamp_ms: int, headers: Headers | None) -> Record:
        offset = self._offsets.get((topic, partition), 0)
        self._offsets[(topic, partition)] = offset + 1
        return Record(topic, partition, offset, key, value, timestamp_ms, list(headers or []))

    # -- output ------------------------------------------------------------------------

    def read_output(self, topic: str) -> list[Send]:
        """What was sent to `topic` since it was last read, in order."""
        return self._outputs.pop(topic, [])

    def read_values(self, topic: str) -> list[Any]:
        """As `read_output`, decoded: the topic's Avro record, or JSON for an internal topic;
        None for a tombstone."""
        spec = self.config.topic(topic)
        kind = None if spec is None else spec.record
        return [None if send.value is None else
                self.catalog.decode(kind, send.value) if kind is not None else
                wire.loads(send.value) for send in self.read_output(topic)]

    def count(self, topic: str) -> int:
        """How many records were sent to `topic` and not read yet."""
        return len(self._outputs.get(topic, ()))

    # -- state -------------------------------------------------------------------------

    def store(self, name: str, partition: int) -> dict[str, Any]:
        """A store partition's committed state, every key."""
        store = self.worker.store(name, partition)
        if store is None:
            raise KeyError(f"no store {name!r} at partition {partition}")
        return dict(store.scan("", "\U0010ffff"))

    def get(self, name: str, key: str, partition: int | None = None) -> Any:
        """One key's committed value, at its key's partition unless given."""
        if partition is None:
            partition = partition_for(key.encode(), self.partitions)
        store = self.worker.store(name, partition)
        if store is None:
            raise KeyError(f"no store {name!r} at partition {partition}")
        return store.get(key)

    def close(self) -> None:
        self.worker.close_stores()

    def __enter__(self) -> TopologyTestDriver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _take(queue: deque[Record], n: int) -> list[Record]:
    return [queue.popleft() for _ in range(min(n, len(queue)))]
