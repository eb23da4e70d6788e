"""What a stage sees while it handles one record: its tables and its outputs.

Writes and outputs are kept aside until the handler returns, so a handler that fails
half way leaves nothing behind: the record is dead-lettered instead, and the batch goes on.
"""

from __future__ import annotations

import hashlib
import logging
from bisect import bisect_left, insort
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from streams.codecs import SchemaCatalog
from streams.metrics import Metrics
from streams.runtime.store import S, StoreView
from streams.runtime.topic_spec import TopicDirectory

if TYPE_CHECKING:
    from streams.runtime.gathered import Gathered
    from streams.runtime.timers import Timers

log = logging.getLogger(__name__)

CORRELATION_HEADER = "correlation_id"
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Record:
    """A consumed record, decoupled from the client library."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: Headers

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def correlation_id(self) -> str | None:
        value = self.header(CORRELATION_HEADER)
        return value.decode("utf-8", "replace") if value else None

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def correlation_headers(correlation: str | None) -> Headers | None:
    return [(CORRELATION_HEADER, correlation.encode())] if correlation else None


@dataclass(frozen=True)
class Send:
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone
    headers: Headers | None = None
    partition: int | None = None
    # None: the producer's time; set when a record is forwarded as it came.
    timestamp_ms: int | None = None


# Bytes a record takes on the wire beyond its key, value and headers (record and batch
# framing), rounded up: a send within limit - this never fails for its size.
RECORD_OVERHEAD = 512
# librdkafka's own default message.max.bytes: the producer refuses larger records itself.
PRODUCER_MAX_BYTES = 1_000_000
# A dead letter's error text is for people: long enough to say what, short enough to fit.
MAX_ERROR_CHARS = 1_000


class UndeclaredOutput(Exception):
    """A send to a topic the stage does not declare in `Stage.outputs`: a bug in the
    wiring, so the topology the code describes is never wrong about where records go."""


class OutputTooLarge(Exception):
    """An output would exceed its topic's max.message.bytes: producing it would fail the
    transaction for good, so the record is dead-lettered before anything is produced."""


@dataclass(frozen=True)
class SizeLimits:
    """Largest record per output topic (the topic's max.message.bytes, read at start)."""

    by_topic: Mapping[str, int] = field(default_factory=dict)
    default: int = PRODUCER_MAX_BYTES

    def of(self, topic: str) -> int:
        return min(self.by_topic.get(topic, self.default), PRODUCER_MAX_BYTES)


def wire_size(send: Send) -> int:
    headers = sum(len(name) + len(value or b"") for name, value in send.headers or ())
    return len(send.key or b"") + len(send.value or b"") + headers + RECORD_OVERHEAD


# Keys from here on are indexes kept as keys (the clock's wakes, waiting lists); the
# domain's own keys sort below it.
INDEX_KEYS_FROM = "~"


class BatchWrites(dict[str, Any]):
    """The writes of a batch's earlier records to one store partition. Its index keys are
    also kept in order, so a range scan over an index does not walk every write."""

    def __init__(self) -> None:
        super().__init__()
        self._index: list[str] = []

    def update(self, layer: Mapping[str, Any]) -> None:  # type: ignore[override]
        for key in layer:
            if key >= INDEX_KEYS_FROM and key not in self:
                insort(self._index, key)
        super().update(layer)

    def between(self, lo: str, hi: str) -> list[tuple[str, Any]]:
        """The writes of keys in [lo, hi), where lo is an index key."""
        index = self._index
        return [(key, self[key]) for key in index[bisect_left(index, lo):bisect_left(index, hi)]]


class Table:
    """One store's partition as the handler sees it: committed state under the writes not
    yet committed, newest first (this handler's, then any caller's, then the batch's)."""

    def __init__(self, store: StoreView, overlays: tuple[dict[str, Any], ...]):
        self._store, self._overlays = store, overlays

    def get(self, key: str) -> Any:
        for writes in self._overlays:
            if key in writes:
                return writes[key]
        return self._store.get(key)

    def load(self, key: str, kind: type[S]) -> S | None:
        """A state written as itself (`table[key] = state`), as `kind`."""
        for writes in self._overlays:
            if key in writes:
                return cast("S | None", writes[key])
        return self._store.load(key, kind)

    def __setitem__(self, key: str, value: Any) -> None:
        self._overlays[0][key] = value

    def __delitem__(self, key: str) -> None:
        self._overlays[0][key] = None

    def scan(self, lo: str, hi: str, limit: int | None = None) -> list[tuple[str, Any]]:
        """Live keys in [lo, hi) in key order, at most `limit`: the store's, under this
        batch's writes. For indexes kept as keys, so no value grows with their size."""
        overlay: dict[str, Any] = {}
        for writes in reversed(self._overlays):
            if isinstance(writes, BatchWrites) and lo >= INDEX_KEYS_FROM:
                overlay.update(writes.between(lo, hi))
            else:
                overlay.update((key, value) for key, value in writes.items() if lo <= key < hi)
        found = []
        for key, value in self._store.scan(lo, hi):
            if key not in overlay:
                found.append((key, value))
                # Every overlay key is skipped here, so `limit` store keys suffice.
                if limit is not None and len(found) >= limit:
                    break
        found += [(key, value) for key, value in overlay.items() if value is not None]
        return sorted(found)[:limit]

    def scan_prefix(self, prefix: str) -> list[tuple[str, Any]]:
        return self.scan(prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))


@dataclass
class Context:
    record: Record
    catalog: SchemaCatalog
    metrics: Metrics
    stores: Mapping[str, StoreView]
    # Writes of earlier records in this batch, per store: read through, never changed here.
    pending: Mapping[str, dict[str, Any]]
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sends: list[Send] = field(default_factory=list)
    # Items sent at the batch's end with others for their partition (streams.runtime.gathered).
    gathered: list[Gathered] = field(default_factory=list)
    parent: Context | None = None
    limits: SizeLimits = field(default_factory=SizeLimits)
    directory: TopicDirectory = field(default_factory=TopicDirectory)
    # The topics a send may go to (the stage's declared outputs); None: any.
    outputs: frozenset[str] | None = None
    # Set by the runtime for a stage with timers (streams.runtime.timers); a child context
    # opens its own, so its wakes stay isolated with its other writes.
    _timers: Timers | None = None
    # Each store's Table, made once: a handler asks for its tables several times per record.
    _tables: dict[str, Table] = field(default_factory=dict)

    @property
    def timers(self) -> Timers:
        """The partition's event time and this stage's wakes."""
        if self._timers is None:
            raise RuntimeError("this stage has no timers (streams.runtime.timers.with_timers)")
        return self._timers

    def use_timers(self, timers: Timers) -> None:
        self._timers = timers

    def table(self, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = Table(self.stores[name], self._overlays(name))
        return table

    def _overlays(self, name: str) -> tuple[dict[str, Any], ...]:
        layer = self.layers.setdefault(name, {})
        below = self.parent._overlays(name) if self.parent else (self.pending[name],)
        return (layer, *below)

    def run_isolated(self, handle: Callable[[Context, Any], None], item: Any, what: str) -> None:
        """Runs `handle(child, item)` in a child context whose writes and sends join this
        record's only if it returns. A failure is logged and dead-lettered, naming `what`,
        and this record's own work stands: a fused stage's bug must not undo its caller's."""
        child = Context(self.record, self.catalog, self.metrics, self.stores, self.pending,
                        parent=self, limits=self.limits, directory=self.directory,
                        outputs=self.outputs)
        try:
            handle(child, item)
        except Exception as exc:
            log.exception("%s failed for %s", what, self.record.where())
            self.metrics.inc("topup_processing_errors_total", topic=self.record.topic)
            self.dead_letter("BAD_PAYLOAD", f"{what} failed: {type(exc).__name__}: {exc}")
            return
        for name, layer in child.layers.items():
            self.layers.setdefault(name, {}).update(layer)
        self.sends += child.sends
        self.gathered += child.gathered

    def send(self, send: Send) -> None:
        self._check_declared(send.topic)
        self._append(send)

    def gather(self, gathered: Gathered) -> None:
        """Items sent with the others for their partition when the batch is handled."""
        self._check_declared(gathered.topic)
        self.gathered.append(gathered)

    def _check_declared(self, topic: str) -> None:
        if self.outputs is not None and topic not in self.outputs:
            raise UndeclaredOutput(
                f"a send to {topic}, which is not among the stage's declared outputs "
                f"({', '.join(sorted(self.outputs)) or 'none'}): add it to Stage.outputs")

    def _append(self, send: Send) -> None:
        size, limit = wire_size(send), self.limits.of(send.topic)
        if size > limit:
            raise OutputTooLarge(
                f"an output to {send.topic} of about {size} bytes exceeds the topic's "
                f"{limit}-byte limit (max.message.bytes)")
        self.sends.append(send)

    def publish(
        self,
        topic: str,
        key: str | None,
        record: Mapping[str, Any],
        headers: Headers | None = None,
    ) -> None:
        """An Avro record on a contract topic."""
        self._publish(topic, key, record, headers, self.send)

    def _publish(
        self,
        topic: str,
        key: str | None,
        record: Mapping[str, Any],
        headers: Headers | None,
        send: Callable[[Send], None],
    ) -> None:
        kind = self.directory.record_of(topic)
        if kind is None:
            raise ValueError(f"{topic} has no Avro record: send its bytes with Context.send")
        value = self.catalog.encode(kind, record, topic=topic)
        send(Send(topic, key.encode() if key is not None else None, value, headers))
        self.metrics.inc("topup_records_published_total", topic=topic)

    def dead_letter(self, kind: str, error: str) -> None:
        key, value, headers = dead_letter_record(self.record, kind, error)
        # The error text may be up to 4 bytes a character, plus the other fields.
        dlq = self.directory.dead_letter_topic
        room = self.limits.of(dlq) - RECORD_OVERHEAD - 4 * MAX_ERROR_CHARS - 1024
        value = fit_dead_letter(value, room, dlq)
        key = value["key"].decode("utf-8", "replace") if value["key"] else None
        # The runtime's own output, open to every stage: not a declared one.
        self._publish(dlq, key, value, headers, self._append)
        self.metrics.inc("topup_dead_letters_total", topic=self.record.topic, kind=kind)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fit_dead_letter(value: dict[str, Any], room: int, topic: str) -> dict[str, Any]:
    """The dead letter, or when the original key and value (carried twice: as the Kafka key,
    decoded with replacement characters of up to 3 bytes a byte, and in the record) do not
    fit in `room` bytes, a copy with them cut to fit and the
    error saying so, with their sizes and SHA-256, so the original can be found and checked."""
    original_key: bytes = value["key"] or b""
    original_value: bytes = value["value"]
    if 4 * len(original_key) + len(original_value) <= room:
        return value
    key = original_key[: min(len(original_key), 1024)]
    kept = max(0, room - 4 * len(key))
    notes = [f"original value of {len(original_value)} bytes (sha256 {_digest(original_value)})"
             f" truncated to its first {min(kept, len(original_value))} bytes"]
    if len(key) < len(original_key):
        notes.append(f"original key of {len(original_key)} bytes (sha256 "
                     f"{_digest(original_key)}) truncated to 1024 bytes")
    error = f"{value['error']} [{'; '.join(notes)}: too large for {topic}]"
    return {**value, "key": key or value["key"], "value": original_value[:kept],
            "error": error}


def dead_letter_record(
    record: Record, kind: str, error: str
) -> tuple[str | None, dict[str, Any], Headers | None]:
    key = record.key.decode("utf-8", "replace") if record.key else None
    value = {
        "source_topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key,
        "value": record.value if record.value is not None else b"",
        "error_kind": kind,
        "error": error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS] + "…",
        # Event time, not the wall clock: a replay must produce the same dead letter.
        "failed_at": record.timestamp_ms,
    }
    return key, value, correlation_headers(record.correlation_id)
