"""Local state: one RocksDB (rocksdict) per store and partition, backed by a changelog."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rocksdict import AccessType, Options, Rdict, WriteBatch

from streams import wire

# A value of None in a write set deletes the key (a tombstone on the changelog).
Writes = Mapping[str, Any]


@dataclass(frozen=True)
class StoreSpec:
    name: str
    # RocksDB TTL: reclaims space only; decisions never depend on it.
    ttl_s: int | None = None
    changelog_config: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def changelog(self, app_id: str) -> str:
        return f"{app_id}-{self.name}-changelog"


def encode_value(value: Any) -> bytes | None:
    return None if value is None else wire.dumps(value)


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

    def get(self, key: str) -> Any:
        return decode_value(self._db.get(key.encode()))

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
