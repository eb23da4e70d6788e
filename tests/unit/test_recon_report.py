"""The numbers and text of `topup-guard recon report` (streams/domain/recon/report.py)."""

from __future__ import annotations

from typing import Any

from streams.domain.recon.report import amount_at_stake, build_report, render_report

T0 = 1_700_000_000_000


def wire_break(
    break_id: str,
    category: str,
    action: str = "MANUAL_REVIEW",
    expected: tuple[int | None, str | None] = (None, None),
    actual: tuple[int | None, str | None] = (None, None),
    order_id: str | None = None,
    detected_at: int = T0,
) -> dict[str, Any]:
    return {
        "break_id": break_id,
        "category": category,
        "order_id": order_id or f"ord-{break_id}",
        "provider": "hmac",
        "expected_amount_minor": expected[0],
        "actual_amount_minor": actual[0],
        "expected_currency": expected[1],
        "actual_currency": actual[1],
        "action": action,
        "evidence": {},
        "detected_at": detected_at,
    }


BREAKS = [
    wire_break("1", "MISSING_CREDIT", "AUTO_CORRECTED", actual=(1000, "USD")),
    wire_break("2", "MISSING_CREDIT", actual=(500, "CNY")),
    wire_break("3", "MISSING_AT_PROVIDER", "FROZEN", expected=(2000, "USD")),
    wire_break("4", "AMOUNT_MISMATCH", expected=(1000, "USD"), actual=(1070, "USD")),
    wire_break("5", "CURRENCY_MISMATCH", expected=(1000, "USD"), actual=(7000, "CNY")),
    wire_break("6", "DUPLICATE_SETTLEMENT", actual=(300, "CNY"), order_id="ord-2"),
]


def test_the_amount_at_stake_of_each_kind_of_break() -> None:
    assert [amount_at_stake(b) for b in BREAKS] == [
        ("USD", 1000),  # settled, never credited
        ("CNY", 500),
        ("USD", 2000),  # credited, never settled
        ("USD", 70),  # the difference
        ("USD", 1000),  # the ledger's side when the currencies differ
        ("CNY", 300),  # the duplicate line
    ]
    assert amount_at_stake(wire_break("7", "REFUND_STATUS_MISMATCH")) is None


def test_breaks_by_category_and_action_amounts_and_match_rate() -> None:
    report = build_report(BREAKS, matched_orders=95)
    assert report.breaks == 6
    assert report.orders_with_breaks == 5
    assert report.by_category == {
        "AMOUNT_MISMATCH": 1,
        "CURRENCY_MISMATCH": 1,
        "DUPLICATE_SETTLEMENT": 1,
        "MISSING_AT_PROVIDER": 1,
        "MISSING_CREDIT": 2,
    }
    assert report.by_action == {"AUTO_CORRECTED": 1, "FROZEN": 1, "MANUAL_REVIEW": 4}
    assert report.by_category_and_action[("MISSING_CREDIT", "AUTO_CORRECTED")] == 1
    assert report.by_category_and_action[("MISSING_CREDIT", "MANUAL_REVIEW")] == 1
    assert report.at_stake == {"CNY": 800, "USD": 4070}
    assert report.match_rate_bp == 9500


def test_a_break_read_twice_counts_once() -> None:
    assert build_report(BREAKS + BREAKS[:2], matched_orders=0).breaks == 6


def test_since_keeps_only_breaks_detected_from_then_on() -> None:
    old = wire_break("old", "MISSING_CREDIT", actual=(9, "USD"), detected_at=T0 - 1)
    report = build_report([old, *BREAKS], matched_orders=1, since_ms=T0)
    assert report.breaks == 6
    assert report.at_stake["USD"] == 4070


def test_no_orders_at_all_has_no_match_rate() -> None:
    report = build_report([], matched_orders=0)
    assert report.match_rate_bp is None
    assert "Match rate: n/a" in render_report(report)


def test_the_text_rendering() -> None:
    text = render_report(build_report(BREAKS, matched_orders=95, since_ms=T0))
    lines = text.splitlines()
    assert lines[0] == "Reconciliation report (since 2023-11-14T22:13:20+00:00)"
    assert lines[1] == "Breaks: 6 on 5 orders"
    assert any(line.split() == ["MISSING_CREDIT", "/", "AUTO_CORRECTED", "1"] for line in lines)
    assert any(line.split() == ["USD", "4070"] for line in lines)
    assert lines[-1] == "Match rate: 95.00% (95 matched orders, 5 with breaks)"


def test_the_match_rate_per_provider() -> None:
    breaks = [*BREAKS, {**wire_break("7", "MISSING_CREDIT", actual=(5, "CNY")),
                        "provider": "wechatpay"}]
    report = build_report(breaks, matched_orders=98,
                          matched_by_provider={"hmac": 95, "wechatpay": 1, "unknown": 2})
    assert {name: (share.matched_orders, share.orders_with_breaks, share.match_rate_bp)
            for name, share in report.by_provider.items()} == {
        "hmac": (95, 5, 9500), "unknown": (2, 0, 10_000), "wechatpay": (1, 1, 5000)}
    assert report.match_rate_bp == 98 * 10_000 // 104
    lines = render_report(report).splitlines()
    start = lines.index("Match rate by provider:")
    assert [line.split()[:2] for line in lines[start + 1:start + 4]] == [
        ["hmac", "95.00%"], ["unknown", "100.00%"], ["wechatpay", "50.00%"]]
    assert "  (none)" in render_report(build_report([], matched_orders=0)).splitlines()
