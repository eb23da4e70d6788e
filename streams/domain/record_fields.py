"""Strict reads of decoded wire records, shared by the domain's input parsers.

A value of the wrong type raises ValueError naming the field, which agents turn into a
dead letter rather than letting it reach a decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def required_text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def optional_text(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value or None
