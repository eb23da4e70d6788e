"""Local state: one RocksDB (rocksdict) per store and partition, backed by a changelog."""

from __future__ import annotations

import shutil
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from rocksdict import AccessType, Options, Rdict, WriteBatch

from streams import wire

# A value of None in a write set deletes the key (a tombstone on the changelog).
Writes = Mapping[str, Any]

# Decoded states kept per store partition, least recently used dropped first. Hot keys
# (a shared ip's velocity, a busy partition's fan-ins) are read back far more often than
# this many distinct keys are touched in between.
DECODED_STATES_KEPT = 1024


class State(Protocol):
    """A domain state stored as itself: encoded once, when its batch commits, and kept
    decoded for the next read. Immutable, so the store and a handler may share one."""

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self: ...


S = TypeVar("S", bound=State)


@dataclass(frozen=True)
class StoreSpec:
    name: str
    # RocksDB TTL: reclaims space only; decisions never depend on it.
    ttl_s: int | None = None
    changelog_config: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def changelog(self, app_id: str) -> str:
        return f"{app_id}-{self.name}-changelog"


def encode_value(value: Any) -> bytes | None:
    if value is None:
        return None
    to_dict = getattr(value, "to_dict", None)
    return wire.dumps(value if to_dict is None else to_dict())


def decode_value(raw: bytes | None) -> Any:
    return None if raw is None else wire.loads(raw)


class PartitionStore:
    """One partition of one store. Holds only committed writes (see streams.runtime)."""

    def __init__(self, path: Path, ttl_s: int | None) -> None:
        # A partition is always rebuilt from its changelog when assigned: start empty.
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        access = AccessType.with_ttl(ttl_s) if ttl_s else AccessType.read_write()
        self._db = Rdict(str(path), Options(raw_mode=True), access_type=access)
        self._decoded: OrderedDict[str, State] = OrderedDict()

    def get(self, key: str) -> Any:
        return decode_value(self._db.get(key.encode()))

    def load(self, key: str, kind: type[S]) -> S | None:
        """The committed state of `key` as `kind`, decoded only when not already kept."""
        state = self._decoded.get(key)
        if isinstance(state, kind):
            self._decoded.move_to_end(key)
            return state
        raw = self._db.get(key.encode())
        if raw is None:
            return None
        state = kind.from_dict(wire.loads(raw))
        self._keep(key, state)
        return state

    def committed(self, writes: Writes) -> None:
        """Keeps the states of a committed batch decoded; any other write of a key
        replaces what was kept for it."""
        for key, value in writes.items():
            self._decoded.pop(key, None)
            if hasattr(value, "to_dict"):
                self._keep(key, value)

    def _keep(self, key: str, state: State) -> None:
        self._decoded[key] = state
        if len(self._decoded) > DECODED_STATES_KEPT:
            self._decoded.popitem(last=False)

    def scan(self, lo: str, hi: str) -> Iterator[tuple[str, Any]]:
        """Committed keys in [lo, hi), in order."""
        it = self._db.iter()
        it.seek(lo.encode())
        end = hi.encode()
        while it.valid() and (key := it.key()) < end:
            yield key.decode(), decode_value(it.value())
            it.next()

    def write(self, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        batch = WriteBatch(raw_mode=True)
        for key, raw in items:
            if raw is None:
                batch.delete(key)
            else:
                batch.put(key, raw)
        self._db.write(batch)

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self.path, ignore_errors=True)
