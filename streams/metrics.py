"""The worker's metrics: counters, gauges and histograms on prometheus-client.

`Metrics` keeps the small API the stages call (`inc`, `set`, `observe`, `describe`,
`render`) and creates each family on first use, so a stage needs no registration step.

Labels are bounded: an attacker who can reach the webhook endpoint chooses the provider
in the URL, so a label value that is not in its known set (`bound`) counts as `other`,
and every label keeps at most `MAX_VALUES_PER_LABEL` distinct values per family whatever
the code passes. Identifier labels (order, account, ...) are refused outright: one series
per order would grow without end.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector

OTHER = "other"
MAX_VALUES_PER_LABEL = 64
FORBIDDEN_LABELS = frozenset({
    "order_id", "account_id", "payment_id", "event_id", "delivery_id", "entry_id",
    "correlation_id", "merchant_id", "refund_id",
})
# Seconds: from a millisecond stage step to a stuck minute (callback → credit under load).
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 120.0)

_Family = Counter | Gauge | Histogram
_Key = tuple[str, tuple[tuple[str, str], ...]]


class Metrics:
    def __init__(self, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry()
        if process_metrics:
            ProcessCollector(registry=self.registry)
        self._families: dict[str, _Family] = {}
        self._children: dict[_Key, object] = {}
        self._help: dict[str, str] = {}
        self._known: dict[str, frozenset[str]] = {}
        self._seen: dict[tuple[str, str], set[str]] = {}

    # -- declaring ---------------------------------------------------------------------

    def describe(self, name: str, text: str) -> None:
        self._help[name] = text

    def bound(self, label: str, values: Iterable[str]) -> None:
        """Values of `label` outside `values` are recorded as `other`."""
        self._known[label] = frozenset(values)

    # -- recording ---------------------------------------------------------------------

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._child(Counter, name, labels).inc(amount)  # type: ignore[attr-defined]

    def set(self, name: str, value: float, **labels: str) -> None:
        self._child(Gauge, name, labels).set(value)  # type: ignore[attr-defined]

    def observe(self, name: str, value: float, **labels: str) -> None:
        self._child(Histogram, name, labels).observe(value)  # type: ignore[attr-defined]

    def render(self) -> str:
        return generate_latest(self.registry).decode()

    # -- internals ---------------------------------------------------------------------

    def _child(self, kind: type[_Family], name: str, labels: dict[str, str]) -> object:
        key = (name, tuple(sorted(labels.items())))
        child = self._children.get(key)
        if child is not None:
            return child
        family = self._family(kind, name, tuple(sorted(labels)))
        values = {label: self._bounded(name, label, str(value))
                  for label, value in labels.items()}
        child = family.labels(**values) if values else family
        # Only exact, in-bound keys are cached, so the cache is bounded like the series.
        if all(values[label] == str(labels[label]) for label in labels):
            self._children[key] = child
        return child

    def _family(self, kind: type[_Family], name: str, label_names: tuple[str, ...]) -> _Family:
        family = self._families.get(name)
        if family is not None:
            if not isinstance(family, kind) or tuple(family._labelnames) != label_names:
                raise ValueError(f"metric {name} used as {kind.__name__}{label_names}, "
                                 f"first as {type(family).__name__}{family._labelnames}")
            return family
        forbidden = FORBIDDEN_LABELS.intersection(label_names)
        if forbidden:
            raise ValueError(f"metric {name}: identifier labels {sorted(forbidden)} "
                             "would make one series per entity")
        text = self._help.get(name, name)
        # prometheus-client appends _total itself; the API takes names as exposed.
        base = name.removesuffix("_total") if kind is Counter else name
        if kind is Histogram:
            family = Histogram(base, text, label_names, registry=self.registry,
                               buckets=LATENCY_BUCKETS)
        else:
            family = kind(base, text, label_names, registry=self.registry)
        self._families[name] = family
        return family

    def _bounded(self, name: str, label: str, value: str) -> str:
        known = self._known.get(label)
        if known is not None:
            return value if value in known else OTHER
        seen = self._seen.setdefault((name, label), set())
        if value in seen:
            return value
        if len(seen) >= MAX_VALUES_PER_LABEL:
            return OTHER
        seen.add(value)
        return value
