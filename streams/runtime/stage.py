"""A stage: the topics it consumes, the state it keeps, and how it handles one record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.runtime.context import Context, Record
from streams.runtime.store import StoreSpec


@dataclass(frozen=True)
class Stage:
    name: str
    # Co-partitioned: a record on partition p of any of them sees partition p of the stores.
    topics: tuple[str, ...]
    stores: tuple[StoreSpec, ...]
    # Raises streams.codecs.DecodeError for input that must go to the DLQ.
    decode: Callable[[Record], Any]
    handle: Callable[[Context, Any], None]
