"""What the runtime needs to know of a topic: how to create it, and for an internal topic
the codec of its record. The application lists its topics (streams/topics.py); the runtime
creates the internal ones its stages read and its changelogs from these specs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

DAY_MS = 24 * 60 * 60 * 1000

R = TypeVar("R")


class Codec(Protocol[R]):
    """An internal topic's format. `decode` raises ValueError for what is not its record."""

    def encode(self, record: R) -> bytes: ...

    def decode(self, raw: bytes | None) -> R: ...


@dataclass(frozen=True)
class TopicSpec(Generic[R]):
    """A topic and what it carries: a contract record (Avro, by name) or, for an internal
    topic, its record's codec, the one place that topic's format is defined."""

    name: str
    record: str | None
    compacted: bool = False
    # None: the configured default retention; -1: keep forever.
    retention_days: int | None = None
    overrides: Mapping[str, str] = field(default_factory=dict)
    codec: Codec[R] | None = None

    def encode(self, value: R) -> bytes:
        return self._codec().encode(value)

    def decode(self, raw: bytes | None) -> R:
        """Raises ValueError for bytes that are not this topic's record."""
        return self._codec().decode(raw)

    def _codec(self) -> Codec[R]:
        if self.codec is None:
            raise TypeError(f"{self.name} has no internal codec (its record: {self.record})")
        return self.codec

    def config(self, default_retention_days: int) -> dict[str, str]:
        if self.compacted:
            return {"cleanup.policy": "compact", **self.overrides}
        days = default_retention_days if self.retention_days is None else self.retention_days
        retention_ms = -1 if days == -1 else days * DAY_MS
        return {"cleanup.policy": "delete", "retention.ms": str(retention_ms), **self.overrides}


@dataclass(frozen=True)
class TopicDirectory:
    """What a handler's context knows of the application's topics: the Avro record each
    carries (None: raw bytes), and where dead letters go."""

    records: Mapping[str, str | None] = field(default_factory=dict)
    dead_letter_topic: str = "dead-letters"

    def record_of(self, topic: str) -> str | None:
        try:
            return self.records[topic]
        except KeyError:
            raise ValueError(f"{topic} is not a topic of this application") from None
