"""Thin wiring: record in, domain call, table update, records out."""

from __future__ import annotations

from pathlib import Path

from streams.codecs import SchemaCatalog
from streams.config import Settings
from streams.domain.event_time import EventTimeBounds
from streams.metrics import Metrics
from streams.runtime.stage import Stage

DEFAULT_RISK_RULES = Path(__file__).resolve().parents[2] / "deploy" / "risk-rules.yaml"


def all_stages(settings: Settings, catalog: SchemaCatalog, metrics: Metrics) -> list[Stage]:
    from streams.agents import (
        balances,
        control,
        funnel,
        intake,
        orders,
        reconciliation,
        risk,
        settlements,
    )
    from streams.domain.recon_thresholds import RateThresholds
    from streams.domain.risk_rules import load_rules

    rules = load_rules(settings.risk_rules or DEFAULT_RISK_RULES)
    funnel.describe(metrics)
    return [
        intake.stage(settings, catalog, metrics),
        control.stage(settings, catalog),
        orders.stage(settings, catalog),
        balances.stage(catalog, metrics),
        settlements.intake_stage(settings, catalog),
        settlements.batches_stage(),
        reconciliation.recon_stage(
            reconciliation.recon_config(settings.recon_missing_credit_grace_s)),
        reconciliation.rates_stage(RateThresholds(
            threshold_bp=settings.recon_mismatch_threshold_bp,
            min_decisions=settings.recon_min_decisions,
            page_intake_lag_seconds=settings.recon_page_intake_lag_s,
            page_verification_failure_bp=settings.recon_page_verification_failure_bp,
        )),
        risk.risk_stage(catalog, rules, metrics,
                        EventTimeBounds.of_seconds(settings.max_event_skew_s,
                                                   settings.max_event_age_s),
                        settings.max_amount_minor),
        risk.velocity_stage(metrics),
    ]
