"""The ledger as the operator tools read it from topup.credits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from streams import topics
from streams.codecs import DecodeError, default_catalog
from streams.kafka_clients import ConsumedRecord


def ledger_entries(records: Iterable[ConsumedRecord],
                   key: bytes | None = None) -> Iterator[dict[str, Any]]:
    """Each entry of topup.credits once (its first copy), in log order, as the balances
    stage applies them; `key` keeps one account's records. A record that does not decode
    was never written by the order stage, and the balances stage skips it too."""
    catalog, seen = default_catalog(), set()
    for record in records:
        if record.topic != topics.CREDITS or record.value is None:
            continue
        if key is not None and record.key != key:
            continue
        try:
            entry = catalog.decode("LedgerEntry", record.value)
        except DecodeError:
            continue
        if entry["entry_id"] in seen:
            continue
        seen.add(entry["entry_id"])
        yield entry
