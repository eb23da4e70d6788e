"""Strict reads of decoded wire records, shared by the domain's input parsers.

A value of the wrong type raises ValueError naming the field, which stages turn into a
dead letter rather than letting it reach a decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# No id, name or code on the wire needs more; a longer one is hostile or broken, and would
# make outputs, state and changelog records grow with it.
MAX_TEXT_CHARS = 1024


def _bounded(name: str, value: str) -> str:
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"{name} is {len(value)} characters long, over {MAX_TEXT_CHARS}")
    return value


def required_text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return _bounded(name, value)


def optional_text(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return _bounded(name, value) if value else None
