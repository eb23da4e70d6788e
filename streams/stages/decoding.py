"""Decoding stage input: a bad record becomes a dead letter carrying its original bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.codecs import DecodeError, SchemaCatalog
from streams.runtime.context import Record


def avro_decoder(catalog: SchemaCatalog, record_name: str) -> Callable[[Record], dict[str, Any]]:
    def decode(record: Record) -> dict[str, Any]:
        if record.value is None:
            raise DecodeError("UNDECODABLE", f"{record.topic} record without a value")
        return catalog.decode(record_name, record.value)

    return decode
