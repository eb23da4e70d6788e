"""The numbers behind `topup-guard recon report [--since ...]`, and their text.

Pure aggregation: the command reads ReconBreak records (dicts as decoded from
`topup.recon-breaks`) and the number of matched orders, and this module does the rest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

BASIS_POINTS = 10_000


def amount_at_stake(record: Mapping[str, Any]) -> tuple[str, int] | None:
    """(currency, minor units) one break puts in doubt.

    Both sides in one currency: the difference between them. Otherwise the ledger's side
    if it has one (credited but not settled, or settled in another currency), else the
    provider's (settled but never credited, a duplicate line).
    """
    expected, actual = record.get("expected_amount_minor"), record.get("actual_amount_minor")
    expected_currency, actual_currency = (
        record.get("expected_currency"),
        record.get("actual_currency"),
    )
    if expected is not None and actual is not None and expected_currency == actual_currency:
        return (str(expected_currency), abs(expected - actual))
    if expected is not None:
        return (str(expected_currency), expected)
    if actual is not None:
        return (str(actual_currency), actual)
    return None


def _rate_bp(matched: int, broken: int) -> int | None:
    total = matched + broken
    return None if total == 0 else matched * BASIS_POINTS // total


@dataclass(frozen=True, slots=True)
class ProviderMatch:
    """One provider's share: its matched orders and its orders with breaks."""

    matched_orders: int
    orders_with_breaks: int

    @property
    def match_rate_bp(self) -> int | None:
        return _rate_bp(self.matched_orders, self.orders_with_breaks)


@dataclass(frozen=True, slots=True)
class ReconReport:
    since_ms: int | None
    breaks: int
    orders_with_breaks: int
    matched_orders: int
    by_category: Mapping[str, int]
    by_action: Mapping[str, int]
    by_category_and_action: Mapping[tuple[str, str], int]
    at_stake: Mapping[str, int]  # currency -> minor units
    by_provider: Mapping[str, ProviderMatch] = field(default_factory=dict)

    @property
    def match_rate_bp(self) -> int | None:
        """Matched orders among matched and broken ones, in basis points; None if neither."""
        return _rate_bp(self.matched_orders, self.orders_with_breaks)


def build_report(
    breaks: Iterable[Mapping[str, Any]],
    matched_orders: int,
    since_ms: int | None = None,
    matched_by_provider: Mapping[str, int] | None = None,
) -> ReconReport:
    """Aggregate breaks detected at or after `since_ms` (all when None).

    A break read twice (the topic is at-least-once for some readers) counts once.
    `matched_by_provider` splits `matched_orders` by provider, for the rate per provider
    (breaks carry their own provider).
    """
    unique: dict[str, Mapping[str, Any]] = {}
    for record in breaks:
        if since_ms is None or record["detected_at"] >= since_ms:
            unique.setdefault(record["break_id"], record)
    records = [unique[break_id] for break_id in sorted(unique)]
    at_stake: Counter[str] = Counter()
    for record in records:
        stake = amount_at_stake(record)
        if stake is not None:
            at_stake[stake[0]] += stake[1]
    return ReconReport(
        since_ms=since_ms,
        breaks=len(records),
        orders_with_breaks=len({record["order_id"] for record in records}),
        matched_orders=matched_orders,
        by_category=dict(sorted(Counter(str(r["category"]) for r in records).items())),
        by_action=dict(sorted(Counter(str(r["action"]) for r in records).items())),
        by_category_and_action=dict(
            sorted(Counter((str(r["category"]), str(r["action"])) for r in records).items())
        ),
        at_stake=dict(sorted(at_stake.items())),
        by_provider=_by_provider(records, matched_by_provider or {}),
    )


def _by_provider(
    records: list[Mapping[str, Any]], matched: Mapping[str, int]
) -> dict[str, ProviderMatch]:
    broken: dict[str, set[str]] = {}
    for record in records:
        broken.setdefault(str(record["provider"]), set()).add(record["order_id"])
    return {
        provider: ProviderMatch(matched.get(provider, 0), len(broken.get(provider, ())))
        for provider in sorted(set(matched) | set(broken))
    }


def format_rate(rate_bp: int | None) -> str:
    return "n/a" if rate_bp is None else f"{rate_bp // 100}.{rate_bp % 100:02d}%"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def render_report(report: ReconReport) -> str:
    since = "all time" if report.since_ms is None else f"since {_iso(report.since_ms)}"
    lines = [
        f"Reconciliation report ({since})",
        f"Breaks: {report.breaks} on {report.orders_with_breaks} orders",
    ]
    sections: list[tuple[str, Mapping[Any, int]]] = [
        ("By category", report.by_category),
        ("By action", report.by_action),
        (
            "By category and action",
            {f"{c} / {a}": n for (c, a), n in report.by_category_and_action.items()},
        ),
        ("Amount at stake (minor units)", report.at_stake),
    ]
    for title, counts in sections:
        lines.append(f"{title}:")
        width = max((len(str(name)) for name in counts), default=0)
        lines.extend(f"  {name!s:<{width}}  {count:>12}" for name, count in counts.items())
        if not counts:
            lines.append("  (none)")
    lines.append("Match rate by provider:")
    width = max((len(name) for name in report.by_provider), default=0)
    lines.extend(
        f"  {name:<{width}}  {format_rate(share.match_rate_bp):>7} "
        f"({share.matched_orders} matched orders, {share.orders_with_breaks} with breaks)"
        for name, share in report.by_provider.items()
    )
    if not report.by_provider:
        lines.append("  (none)")
    lines.append(
        f"Match rate: {format_rate(report.match_rate_bp)} ({report.matched_orders} matched "
        f"orders, {report.orders_with_breaks} with breaks)"
    )
    return "\n".join(lines) + "\n"
