"""Deterministic ids.

An id is a hash of its cause, never a counter or a random value, so a replay, a restart
or a second path to the same fact (webhook callback, reconciliation) reproduces it and
any consumer can deduplicate on it.
"""

from __future__ import annotations

import functools
import hashlib
import re

# Bumping the scheme changes every id; only ever do that together with a migration.
_SCHEME = "topup-guard/v1"
_HEX_CHARS = 32
_PREFIX = re.compile(r"[a-z]{1,8}")
LEDGER_OPS = frozenset({"CREDIT", "DEBIT", "REVERSAL"})

IdPart = str | int | None
# An order's entry ids are asked for several times per record it handles (is it
# credited? reversed?); each is a SHA-256. Bounded: about 1.5 MB at most.
ENTRY_IDS_CACHED = 8192


_SCHEME_CHUNK = b"s%d:%b" % (len(_SCHEME.encode()), _SCHEME.encode())


def _encode_part(part: IdPart) -> bytes:
    # Each part is tagged and length-prefixed, so no text inside a part can imitate a
    # boundary ("a|b","c" and "a","b|c" differ) and None differs from "".
    if part is None:
        return b"n"
    if isinstance(part, bool):
        raise TypeError("id parts are str, int or None, not bool")
    if isinstance(part, int):
        return b"i%d;" % part
    if isinstance(part, str):
        data = part.encode("utf-8")
        return b"s%d:" % len(data) + data
    raise TypeError(f"id parts are str, int or None, not {type(part).__name__}")


def _encode(parts: tuple[IdPart, ...]) -> bytes:
    chunks: list[bytes] = []
    for part in parts:
        # Plain str and int take the short way (ids are hashed several times per
        # record); subclasses (enums, bool) go through every check.
        if type(part) is str:
            data = part.encode("utf-8")
            chunks.append(b"s%d:%b" % (len(data), data))
        elif type(part) is int:
            chunks.append(b"i%d;" % part)
        else:
            chunks.append(_encode_part(part))
    return b"".join(chunks)


def _digest(*parts: IdPart) -> str:
    return hashlib.sha256(_SCHEME_CHUNK + _encode(parts)).hexdigest()[:_HEX_CHARS]


@functools.lru_cache(maxsize=ENTRY_IDS_CACHED)
def entry_id(order_id: str, op: str, external_txn_id: str | None, refund_id: str | None) -> str:
    """The ledger entry id of one money movement, the same on every path that records it.

    Derived from exactly (order_id, op, external_txn_id, refund_id) as the contract says.
    An empty string is refused rather than read as "absent": absent is None.
    """
    if not order_id or external_txn_id == "" or refund_id == "":
        raise ValueError("order_id must be non-empty; absent ids are None, not ''")
    op = str(op)  # a StrEnum member hashes as its plain value
    if op not in LEDGER_OPS:
        raise ValueError(f"op must be one of {sorted(LEDGER_OPS)}")
    return "le_" + _digest("ledger-entry", order_id, op, external_txn_id, refund_id)


def derived_id(prefix: str, *parts: IdPart) -> str:
    """An id for an audit record, alert, break or case, derived from what caused it."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError("prefix must be 1-8 lower-case letters")
    return f"{prefix}_" + _digest("derived", prefix, *parts)
