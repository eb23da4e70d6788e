"""Thin wiring: record in, domain call, table update, records out.

The graph of stages is built in streams/topology.py."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Kept for callers of the old home of the graph; imported late because
    # streams.topology imports this package's modules.
    if name in ("all_stages", "DEFAULT_RISK_RULES"):
        from streams import topology

        return getattr(topology, name)
    raise AttributeError(name)
