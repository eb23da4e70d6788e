"""The whole processing graph as a value: which stages run, what each reads, keeps and
writes, and the internal topics the runtime adds. `topup-guard topology` prints it, and a
test holds topology.md to it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams import topics
from streams.codecs import SchemaCatalog
from streams.config import Settings
from streams.domain.common.configured_providers import configured_providers
from streams.domain.common.event_time import EventTimeBounds
from streams.domain.recon.thresholds import RateThresholds
from streams.metrics import Metrics
from streams.rule_files import load_rules
from streams.runtime.stage import Stage
from streams.runtime.store import StoreSpec, families
from streams.stages import (
    balances,
    control,
    funnel,
    intake,
    orders,
    reconciliation,
    risk,
    settlements,
)

DEFAULT_RISK_RULES = Path(__file__).resolve().parents[1] / "deploy" / "risk-rules.yaml"


def all_stages(settings: Settings, catalog: SchemaCatalog, metrics: Metrics) -> list[Stage]:
    """Every stage a worker runs, in the order it hands a record to them."""
    rules = load_rules(settings.risk_rules or DEFAULT_RISK_RULES)
    funnel.describe(metrics)
    return [
        intake.stage(settings, catalog, metrics),
        control.stage(settings, catalog),
        orders.stage(settings, catalog),
        balances.stage(settings, catalog, metrics),
        settlements.intake_stage(settings, catalog),
        settlements.batches_stage(settings.order_retention_days * 24 * 60 * 60 * 1000),
        reconciliation.recon_stage(
            reconciliation.recon_config(settings.recon_missing_credit_grace_s,
                                        settings.order_retention_days)),
        reconciliation.rates_stage(RateThresholds(
            threshold_bp=settings.recon_mismatch_threshold_bp,
            min_decisions=settings.recon_min_decisions,
            page_intake_lag_seconds=settings.recon_page_intake_lag_s,
            page_verification_failure_bp=settings.recon_page_verification_failure_bp,
        )),
        risk.risk_stage(catalog, rules, metrics,
                        EventTimeBounds.of_seconds(settings.max_event_skew_s,
                                                   settings.max_event_age_s),
                        settings.max_amount_minor,
                        settings.order_retention_days * 24 * 60 * 60 * 1000,
                        configured_providers(settings), partitions=settings.partitions),
        risk.velocity_stage(metrics, retire_slack_ms=settings.max_event_skew_s * 1000,
                            partitions=settings.partitions),
    ]


@dataclass(frozen=True)
class Topology:
    app_id: str
    stages: tuple[Stage, ...]

    def runtime_inputs(self, stage: Stage) -> list[str]:
        """The topics the runtime feeds the stage beyond its declared ones: the
        repartition topic of each keyed input, and the ticks for a stage with timers."""
        extra = [topics.repartition_topic(topic) for topic in stage.keyed]
        if stage.on_tick is not None:
            extra.append(topics.TICKS)
        return extra

    def internal_topics(self) -> list[str]:
        """Topics the runtime writes itself (never a stage): repartition, ticks, the DLQ
        and every store's changelog."""
        runtime = {topic for stage in self.stages for topic in self.runtime_inputs(stage)}
        return [*sorted(runtime), topics.DLQ, *self.changelogs()]

    def changelogs(self) -> list[str]:
        stored = families(spec for stage in self.stages for spec in stage.stores)
        return [spec.changelog(self.app_id) for _, spec in sorted(stored.items())]

    def copartitioned(self) -> list[list[str]]:
        """Per stage, the topics whose partition p meets partition p of its stores. The
        worker checks them all against one count (TOPUP_PARTITIONS), so every group here
        shares it too."""
        groups = []
        for stage in self.stages:
            if not stage.stores:
                continue
            groups.append([*stage.topics, *self.runtime_inputs(stage),
                           *sorted({spec.changelog(self.app_id) for spec in stage.stores})])
        return groups

    def as_dict(self) -> dict[str, Any]:
        return {
            "stages": [{
                "name": stage.name,
                "inputs": list(stage.topics),
                "runtime_inputs": self.runtime_inputs(stage),
                "outputs": list(stage.outputs),
                "stores": [spec.name for spec in stage.stores],
            } for stage in self.stages],
            "internal_topics": self.internal_topics(),
            "copartitioned": self.copartitioned(),
        }


def store_specs(settings: Settings) -> dict[str, StoreSpec]:
    """Every store of the topology by name: where its keys are kept (its family's
    changelog, under its prefix), for tools that read or write changelogs."""
    from streams.codecs import default_catalog

    stages = all_stages(settings, default_catalog(), Metrics())
    return {spec.name: spec for stage in stages for spec in stage.stores}


def build(settings: Settings, catalog: SchemaCatalog, metrics: Metrics) -> Topology:
    return Topology(settings.app_id, tuple(all_stages(settings, catalog, metrics)))


def as_table(topology: Topology) -> str:
    rows = ["| stage | reads | stores | writes |", "|---|---|---|---|"]
    for stage in topology.stages:
        reads = [*stage.topics, *(f"{topic} (runtime)" for topic in topology.runtime_inputs(stage))]
        rows.append(f"| {stage.name} | {', '.join(reads)} | "
                    f"{', '.join(spec.name for spec in stage.stores) or '—'} | "
                    f"{', '.join(stage.outputs) or '—'} |")
    lines = [*rows, "", "Every stage may also write topup.dlq (the runtime's dead letters).", "",
             "internal topics (written by the runtime):"]
    lines += [f"  {name}" for name in topology.internal_topics()]
    lines += ["", "co-partitioned (one partition count, TOPUP_PARTITIONS):"]
    lines += [f"  {', '.join(group)}" for group in topology.copartitioned()]
    return "\n".join(lines)


def _node(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def as_mermaid(topology: Topology) -> str:
    lines = ["flowchart LR"]
    for stage in topology.stages:
        node = f"stage_{_node(stage.name)}"
        lines.append(f"  {node}[{stage.name} stage]")
        for topic in stage.topics:
            lines.append(f"  {_node(topic)}[({topic})] --> {node}")
        for topic in topology.runtime_inputs(stage):
            lines.append(f"  {_node(topic)}[({topic})] -.-> {node}")
        for spec in stage.stores:
            lines.append(f"  {node} --- store_{_node(spec.name)}[[{spec.name}]]")
        for topic in stage.outputs:
            lines.append(f"  {node} --> {_node(topic)}[({topic})]")
    return "\n".join(lines)


def as_json(topology: Topology) -> str:
    return json.dumps(topology.as_dict(), indent=2)
