"""The worker's metrics: counters, gauges and histograms on prometheus-client.

`Metrics` keeps the small API the stages call (`inc`, `set`, `observe`, `describe`,
`render`) and creates each family on first use, so a stage needs no registration step.

Labels are bounded: an attacker who can reach the webhook endpoint chooses the provider
in the URL, so a label value that is not in its known set (`bound`) counts as `other`,
and every label keeps at most `MAX_VALUES_PER_LABEL` distinct values per family whatever
the code passes. Identifier labels (order, account, ...) are refused outright: one series
per order would grow without end.

Recording is buffered: the hot path calls `inc`/`observe` once or twice per record and
stage, and prometheus-client takes a lock and walks the buckets in Python on every call
(~5% of the topology's time, bench/HISTORY.md). So a call only adds to a plain counter
for its series, and `flush` hands the sums to prometheus-client once per batch (the
worker's `handle_batch`) and before every exposition (`render`), so a scrape never sees
less than was recorded. Histograms keep one observation per call: only the bucket
arithmetic is batched, the distribution is the same.
"""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left
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


class _Observed:
    """A histogram series' observations since the last flush: per-bucket counts, sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: list[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0.0


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
        # Recorded, not yet handed to prometheus-client (see the module's docstring).
        # Keyed by the prometheus-client series, so bounded like the series themselves.
        # The lock is uncontended on the hot path; it keeps a scrape's flush (the web
        # thread) from racing the worker's recording.
        self._lock = threading.Lock()
        # A series' first use registers its family: two threads (the webhook server's)
        # doing it at once would register it twice, which prometheus-client refuses.
        self._creating = threading.Lock()
        self._counted: dict[object, float] = {}
        self._gauged: dict[object, float] = {}
        self._observed: dict[object, _Observed] = {}

    # -- declaring ---------------------------------------------------------------------

    def describe(self, name: str, text: str) -> None:
        self._help[name] = text

    def bound(self, label: str, values: Iterable[str]) -> None:
        """Values of `label` outside `values` are recorded as `other`."""
        self._known[label] = frozenset(values)

    # -- recording ---------------------------------------------------------------------

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            # prometheus-client would refuse it only at the flush, far from the caller.
            raise ValueError(f"counter {name} incremented by {amount}: counters only grow")
        # The cache looked up here rather than in _child: a call fewer per record.
        child = self._children.get((name, tuple(labels.items())))
        if child is None:
            child = self._child(Counter, name, labels)
        with self._lock:
            counted = self._counted
            counted[child] = counted.get(child, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        child = self._children.get((name, tuple(labels.items())))
        if child is None:
            child = self._child(Gauge, name, labels)
        with self._lock:
            self._gauged[child] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        child = self._children.get((name, tuple(labels.items())))
        if child is None:
            child = self._child(Histogram, name, labels)
        with self._lock:
            observed = self._observed.get(child)
            if observed is None:
                observed = self._observed[child] = _Observed(
                    child._upper_bounds)  # type: ignore[attr-defined]
            # As prometheus-client's observe: the first bucket whose bound is >= value;
            # NaN falls in none (but counts in the sum).
            if value == value:
                observed.counts[bisect_left(observed.bounds, value)] += 1
            observed.total += value

    def forget(self, name: str, **labels: str) -> None:
        """Drops one series, as it was recorded: a gauge for what this process no longer
        does (a partition gone to another worker) would otherwise keep its last value,
        and an alert on it, for good."""
        child = self._children.pop((name, tuple(labels.items())), None)
        family = self._families.get(name)
        if family is None:
            return
        with self._lock:
            if child is not None:
                self._gauged.pop(child, None)
            with contextlib.suppress(KeyError):
                family.remove(*(str(labels[label]) for label in family._labelnames))

    def flush(self) -> None:
        """Hands what was recorded since the last flush to prometheus-client."""
        with self._lock:
            counted, self._counted = self._counted, {}
            gauged, self._gauged = self._gauged, {}
            observed, self._observed = self._observed, {}
            # Inside the lock: a flush racing another must not reorder a gauge's values.
            for child, amount in counted.items():
                child.inc(amount)  # type: ignore[attr-defined]
            for child, value in gauged.items():
                child.set(value)  # type: ignore[attr-defined]
            for child, pending in observed.items():
                # prometheus-client has no bulk observe; these are the values its
                # observe() adds to (tests/unit/test_metrics.py checks they agree).
                buckets = child._buckets  # type: ignore[attr-defined]
                for i, n in enumerate(pending.counts):
                    if n:
                        buckets[i].inc(n)
                child._sum.inc(pending.total)  # type: ignore[attr-defined]

    def render(self) -> str:
        self.flush()
        return generate_latest(self.registry).decode()

    # -- internals ---------------------------------------------------------------------

    def _child(self, kind: type[_Family], name: str, labels: dict[str, str]) -> object:
        # In the caller's label order, unsorted (inc, set and observe look it up too):
        # sorting per call costs more than the extra cache entry a call site naming the
        # same labels in another order makes.
        with self._creating:
            return self._created_child(kind, name, labels)

    def _created_child(self, kind: type[_Family], name: str, labels: dict[str, str]) -> object:
        key = (name, tuple(labels.items()))
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
