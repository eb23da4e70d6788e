"""Thin wiring: stream in, domain call, table update, topic out."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.app import Pipeline


def register_all(pipeline: Pipeline) -> None:
    from streams import web
    from streams.agents import balances, control, intake, orders

    intake.register(pipeline)
    control.register(pipeline)
    orders.register(pipeline)
    balances.register(pipeline)
    web.register(pipeline)
