"""Counters and gauges, rendered in the Prometheus text format at /metrics."""

from __future__ import annotations

from collections import defaultdict

LabelSet = tuple[tuple[str, str], ...]


class Metrics:
    def __init__(self) -> None:
        self._counters: dict[str, dict[LabelSet, float]] = defaultdict(dict)
        self._gauges: dict[str, dict[LabelSet, float]] = defaultdict(dict)
        self._help: dict[str, str] = {}

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        series = self._counters[name]
        key = tuple(sorted(labels.items()))
        series[key] = series.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        self._gauges[name][tuple(sorted(labels.items()))] = value

    def describe(self, name: str, text: str) -> None:
        self._help[name] = text

    def render(self) -> str:
        lines: list[str] = []
        for kind, families in (("counter", self._counters), ("gauge", self._gauges)):
            for name in sorted(families):
                if name in self._help:
                    lines.append(f"# HELP {name} {self._help[name]}")
                lines.append(f"# TYPE {name} {kind}")
                for labels, value in sorted(families[name].items()):
                    lines.append(f"{name}{_format_labels(labels)} {value:g}")
        return "\n".join(lines) + "\n"


def _format_labels(labels: LabelSet) -> str:
    if not labels:
        return ""
    escaped = (
        (k, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")) for k, v in labels
    )
    return "{" + ",".join(f'{k}="{v}"' for k, v in escaped) + "}"
