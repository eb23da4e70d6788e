"""Thin wiring: stream in, domain call, table update, topic out."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.app import Pipeline


def register_all(pipeline: Pipeline) -> None:
    from streams.agents import orders

    orders.register(pipeline)
