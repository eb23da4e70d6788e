"""The JSON of internal topics and of stored state: compact, and fast.

Every record a stage handles is decoded and its state re-encoded, so this is the hot
path; orjson does it several times faster than the standard library. Provider payloads
are parsed elsewhere, by the strict reader in streams/providers.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    # Non-str keys become strings, as the standard library does, instead of failing.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def loads(raw: bytes | str) -> Any:
    """Raises ValueError (orjson.JSONDecodeError) for what is not JSON."""
    return orjson.loads(raw)
