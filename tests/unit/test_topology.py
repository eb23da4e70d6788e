"""The graph the code declares, and topology.md's stage table held to it."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

from streams import topics, topology
from streams.cli import main
from streams.codecs import default_catalog
from streams.config import load_settings
from streams.metrics import Metrics

TOPOLOGY_MD = Path(__file__).resolve().parents[2] / "topology.md"
TOPIC = re.compile(r"topup\.[a-z][a-z0-9.-]*[a-z0-9]")


@pytest.fixture(scope="module")
def graph() -> topology.Topology:
    return topology.build(load_settings({}), default_catalog(), Metrics())


def _without_parentheses(cell: str) -> str:
    depth, kept = 0, []
    for ch in cell:
        depth += ch == "("
        if depth == 0:
            kept.append(ch)
        depth -= ch == ")"
    return "".join(kept)


def documented_stages() -> dict[str, dict[str, set[str]]]:
    """topology.md's stage table: per stage, the topics named in its reads and writes, and
    the store names (each the first word of a comma-separated item, outside parentheses)."""
    text = TOPOLOGY_MD.read_text()
    start = text.index("| stage | reads | store (key) | writes |")
    rows = text[start:text.index("\n\n", start)].splitlines()[2:]
    stages = {}
    for row in rows:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
        name, reads, stores, writes = cells
        store_items = _without_parentheses(stores).split(",")
        stages[name] = {
            "inputs": set(TOPIC.findall(reads)),
            "stores": {item.split()[0] for item in store_items if item.strip() not in ("", "—")},
            "outputs": set(TOPIC.findall(writes)),
        }
    return stages


def test_topology_md_names_every_stage_with_the_inputs_stores_and_outputs_it_declares(graph):
    declared = {stage.name: {"inputs": set(stage.topics),
                             "stores": {spec.name for spec in stage.stores},
                             "outputs": set(stage.outputs)} for stage in graph.stages}
    assert documented_stages() == declared


def test_the_parser_sees_a_drifted_row():
    # The check above compares sets; this makes sure it reads what a reader would.
    orders = documented_stages()["orders"]
    assert topics.RISK_DECISIONS in orders["inputs"]
    assert orders["stores"] == {"order-state", "order-partitions", "recon-state",
                                "recon-partitions"}


def test_every_stage_declares_its_outputs_and_none_declares_the_runtimes_own(graph):
    runtime_topics = {topics.DLQ, topics.TICKS, topics.ORDERS_REPARTITION}
    for stage in graph.stages:
        assert not runtime_topics & set(stage.outputs), stage.name
        assert set(stage.outputs) <= set(topics.BY_NAME), stage.name
    silent = [stage.name for stage in graph.stages if not stage.outputs]
    assert silent == ["balances"]


def test_the_runtime_adds_repartition_ticks_and_changelogs_as_internal_topics(graph):
    internal = graph.internal_topics()
    assert topics.ORDERS_REPARTITION in internal and topics.TICKS in internal
    # Every store that keeps its state for good is in the state family's one changelog;
    # the dedup store, whose entries expire, keeps its own.
    changelogs = [name for name in internal if name.endswith("-changelog")]
    assert changelogs == [f"{graph.app_id}-state-changelog",
                          f"{graph.app_id}-webhook-dedup-changelog"]
    [orders] = [group for group in graph.copartitioned() if topics.RISK_DECISIONS in group]
    assert topics.ORDERS in orders and f"{graph.app_id}-state-changelog" in orders


def test_the_cli_prints_the_graph_as_a_table_as_mermaid_and_as_json(capsys, graph):
    assert main(["topology"]) == 0
    table = capsys.readouterr().out
    assert "| orders | topup.orders, topup.internal.payments" in table
    assert main(["topology", "--mermaid"]) == 0
    mermaid = capsys.readouterr().out
    assert mermaid.startswith("flowchart LR")
    assert "topup_risk_decisions[(topup.risk-decisions)] --> stage_orders" in mermaid
    assert main(["topology", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described == graph.as_dict()


SENT_TO = re.compile(r"(?:Send\(\s*|publish\(\s*)topics\.([A-Z_]+)")


def test_every_topic_a_stage_module_sends_to_is_declared_by_its_stages(graph):
    """A static net under Context's check: a send added to a stage module without its
    output declared fails here, before any record takes that path."""
    declared: dict[str, set[str]] = {}
    for stage in graph.stages:
        declared.setdefault(stage.handle.__module__, set()).update(stage.outputs)
    for module, outputs in declared.items():
        source = Path(importlib.import_module(module).__file__ or "").read_text()
        sent = {getattr(topics, name) for name in SENT_TO.findall(source)}
        assert sent - {topics.DLQ} <= outputs, module
    assert declared["streams.stages.intake"] >= {topics.PAYMENTS, topics.ALERTS}
