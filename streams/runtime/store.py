"""Local state: one RocksDB (rocksdict) per store and partition, backed by a changelog.

A store partition survives restarts and revocations. Beside its data it keeps a checkpoint:
the changelog it mirrors and the changelog offset up to which it holds every committed
write. The checkpoint is written in the same RocksDB write batch as the data it covers, so
the two can never disagree, even after kill -9. A checkpoint may lag the data (replaying a
changelog from an older offset converges to the same state) but never lead it.
"""

from __future__ import annotations

import logging
import shutil
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar, cast

from rocksdict import AccessType, Options, Rdict, WriteBatch

from streams import wire

log = logging.getLogger(__name__)

# A value of None in a write set deletes the key (a tombstone on the changelog).
Writes = Mapping[str, Any]

# UTF-8 never holds the byte 0xff, so no domain key (always an encoded str) sorts at or
# after this one and no scan, whose bounds are encoded strs, ever reaches it.
CHECKPOINT_KEY = b"\xff\xffcheckpoint"

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
    # Stores of one family share a RocksDB and a changelog per partition, each key under
    # its store's name: a transaction then writes one changelog partition per family and
    # partition instead of one per store, and its commit waits for a round trip per
    # partition written (bench/HISTORY.md). None: a store of its own.
    family: str | None = None

    @property
    def stored_in(self) -> StoreSpec:
        """The store that holds this one's keys on disk and in a changelog: its family's."""
        if self.family is None:
            return self
        return StoreSpec(self.family, self.ttl_s, self.changelog_config)

    @property
    def key_prefix(self) -> str:
        return "" if self.family is None else f"{self.name}/"

    def changelog(self, app_id: str) -> str:
        return f"{app_id}-{self.stored_in.name}-changelog"

    def own_key(self, raw: bytes | None) -> str | None:
        """A changelog record's key in this store, or None when it is another's."""
        key = (raw or b"").decode()
        prefix = self.key_prefix
        return key[len(prefix):] if key.startswith(prefix) else None

    def path(self, state_dir: Path, partition: int) -> Path:
        """Where its partition lives on disk, for the owner and a standby alike."""
        return state_dir / self.stored_in.name / str(partition)


def families(specs: Iterable[StoreSpec]) -> dict[str, StoreSpec]:
    """The stores held on disk, by name: each family once, each other store itself.
    Members of a family must agree on what their shared store is."""
    specs = list(specs)
    stored: dict[str, StoreSpec] = {}
    names = {spec.name for spec in specs}
    for spec in specs:
        held = spec.stored_in
        if spec.family is not None and spec.family in names:
            raise ValueError(f"store family {spec.family!r} has the name of a store")
        known = stored.setdefault(held.name, held)
        if (known.ttl_s, dict(known.changelog_config)) != (held.ttl_s,
                                                           dict(held.changelog_config)):
            raise ValueError(f"stores of family {held.name!r} disagree on ttl_s or "
                             f"changelog_config (at {spec.name!r})")
    return stored


def encode_value(value: Any) -> bytes | None:
    if value is None:
        return None
    to_dict = getattr(value, "to_dict", None)
    return wire.dumps(value if to_dict is None else to_dict())


def decode_value(raw: bytes | None) -> Any:
    return None if raw is None else wire.loads(raw)


class PartitionStore:
    """One partition of one store. Holds only committed writes (see streams.runtime)."""

    def __init__(self, path: Path, ttl_s: int | None, changelog: str, stores: int = 1) -> None:
        """`stores`: how many stores keep their keys here (a family's), each with its own
        share of decoded states."""
        self.path, self.changelog, self._ttl_s = path, changelog, ttl_s
        self._stores = stores
        # Why the local copy cannot be trusted and a full restore is needed; None when
        # its checkpoint is usable (or it is simply new).
        self.discarded: str | None = None
        self._decoded: OrderedDict[str, State] = OrderedDict()
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        try:
            self._db = self._open()
        except Exception as exc:  # rocksdict raises plain Exceptions on corruption
            self._db = self._wiped(f"store failed to open ({type(exc).__name__}: {exc})")
            return
        self.checkpoint: int | None = None
        saved = self._db.get(CHECKPOINT_KEY)
        if saved is None:
            if existed:
                self.discard("no checkpoint in the local store")
            return
        try:
            mark = wire.loads(saved)
            checkpoint_of, offset = mark["changelog"], int(mark["offset"])
        except Exception as exc:
            self.discard(f"unreadable checkpoint ({type(exc).__name__}: {exc})")
            return
        if checkpoint_of != changelog:
            self.discard(f"foreign store: it mirrors {checkpoint_of}, not {changelog}")
            return
        self.checkpoint = offset

    def _open(self) -> Rdict:
        access = AccessType.with_ttl(self._ttl_s) if self._ttl_s else AccessType.read_write()
        return Rdict(str(self.path), Options(raw_mode=True), access_type=access)

    def _wiped(self, reason: str) -> Rdict:
        self.discarded, self.checkpoint = reason, None
        self._decoded.clear()
        shutil.rmtree(self.path, ignore_errors=True)
        return self._open()

    def discard(self, reason: str) -> None:
        """Empties the open store for a full restore."""
        self._db.close()
        self._db = self._wiped(reason)

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
        if len(self._decoded) > DECODED_STATES_KEPT * self._stores:
            self._decoded.popitem(last=False)

    def scan(self, lo: str, hi: str) -> Iterator[tuple[str, Any]]:
        """Committed keys in [lo, hi), in order."""
        it = self._db.iter()
        it.seek(lo.encode())
        end = hi.encode()
        while it.valid() and (key := it.key()) < end:
            yield key.decode(), decode_value(it.value())
            it.next()

    def raw_items(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Every stored key under `prefix` and its value as bytes, the checkpoint left out
        (for checks)."""
        it = self._db.iter()
        it.seek(prefix)
        while it.valid() and (key := it.key()).startswith(prefix) and key != CHECKPOINT_KEY:
            # The store is opened raw: keys and values are bytes, whatever the stubs allow.
            yield cast(bytes, key), cast(bytes, it.value())
            it.next()

    def write(self, items: Iterable[tuple[bytes, bytes | None]],
              applied_up_to: int | None = None) -> None:
        """Writes committed changelog records, and with `applied_up_to` (the changelog
        offset after the last of them) the checkpoint, in one atomic write batch."""
        batch = WriteBatch(raw_mode=True)
        for key, raw in items:
            if raw is None:
                batch.delete(key)
            else:
                batch.put(key, raw)
        if applied_up_to is not None:
            batch.put(CHECKPOINT_KEY, wire.dumps(
                {"changelog": self.changelog, "offset": applied_up_to}))
        self._db.write(batch)
        if applied_up_to is not None:
            self.checkpoint = applied_up_to

    def flush(self) -> None:
        """Writes the memtables out to table files. A store opened after a kill -9
        replays its write-ahead log since the last flush (about 0.4 s per 250k orders
        here), so a large restore flushes once it is done; a clean close flushes anyway."""
        self._db.flush()

    def close(self) -> None:
        """Closes the store and keeps it on disk, for a later restart or reassignment."""
        self._db.close()

    def remove(self) -> None:
        self._db.close()
        shutil.rmtree(self.path, ignore_errors=True)


class StoreView:
    """One store's partition as the stages see it: its keys in the partition store that
    holds them, under its prefix when it shares that with its family."""

    def __init__(self, store: PartitionStore, prefix: str) -> None:
        self.store, self.prefix = store, prefix

    def get(self, key: str) -> Any:
        return self.store.get(self.prefix + key)

    def load(self, key: str, kind: type[S]) -> S | None:
        return self.store.load(self.prefix + key, kind)

    def committed(self, writes: Writes) -> None:
        prefix = self.prefix
        self.store.committed({prefix + key: value for key, value in writes.items()}
                             if prefix else writes)

    def scan(self, lo: str, hi: str) -> Iterator[tuple[str, Any]]:
        cut = len(self.prefix)
        for key, value in self.store.scan(self.prefix + lo, self.prefix + hi):
            yield key[cut:], value

    def raw_items(self) -> Iterator[tuple[bytes, bytes]]:
        prefix = self.prefix.encode()
        for key, value in self.store.raw_items(prefix):
            yield key[len(prefix):], value
