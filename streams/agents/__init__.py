"""Thin wiring: record in, domain call, table update, records out."""

from __future__ import annotations

from streams.codecs import SchemaCatalog
from streams.config import Settings
from streams.metrics import Metrics
from streams.runtime.stage import Stage


def all_stages(settings: Settings, catalog: SchemaCatalog, metrics: Metrics) -> list[Stage]:
    from streams.agents import balances, control, intake, orders, reconciliation, settlements

    return [
        intake.stage(settings, catalog, metrics),
        control.stage(settings, catalog),
        orders.stage(settings, catalog),
        balances.stage(catalog, metrics),
        settlements.intake_stage(settings, catalog),
        settlements.batches_stage(),
        reconciliation.recon_stage(),
        reconciliation.rates_stage(),
    ]
