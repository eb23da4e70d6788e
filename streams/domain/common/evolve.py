"""A copy of a frozen dataclass with some fields changed, cheaper than dataclasses.replace.

dataclasses.replace walks the class's fields and checks each one on every call; the order
and reconciliation machines replace their states several times per record, so that walk
was about 5% of the domain's time. The init fields are looked up once per class; the
constructor still runs, so every __post_init__ check still holds, and an unknown field
is still refused (by the constructor, with a TypeError).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")

_INIT_FIELDS: dict[type, tuple[str, ...]] = {}


def init_fields(cls: type) -> tuple[str, ...]:
    """The names of a dataclass's init fields, in order, looked up once per class (the
    records' to_dict/from_dict use it too: `dataclasses.fields` walks the class each call)."""
    names = _INIT_FIELDS.get(cls)
    if names is None:
        names = _INIT_FIELDS[cls] = tuple(f.name for f in fields(cls) if f.init)
    return names


def evolve(obj: T, /, **changes: Any) -> T:
    """`obj` with `changes`, built through its constructor as dataclasses.replace does."""
    cls = type(obj)
    kwargs = {name: getattr(obj, name) for name in init_fields(cls)}
    kwargs.update(changes)
    return cls(**kwargs)
