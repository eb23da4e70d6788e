"""The console's pure parts: token-derived secrets, the funnel's buckets, escaping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams import topics
from streams.config import load_settings
from streams.console import auth
from streams.console.app import _age, _environment
from streams.console.funnel import count_funnel
from streams.console.queries import QueueItem
from streams.domain.recon.report import build_report
from streams.kafka_clients import ConsumedRecord
from streams.ops.reviews import Case


def test_the_session_and_csrf_values_reveal_nothing_of_the_token_and_differ():
    session, csrf = auth.session_value("s3cret"), auth.csrf_value("s3cret")
    assert len({session, csrf, "s3cret"}) == 3 and "s3cret" not in session + csrf
    # A new token revokes every session and every form.
    assert auth.session_value("other") != session and auth.csrf_value("other") != csrf


def test_the_console_token_comes_from_env_or_file_and_stays_out_of_repr(tmp_path: Path):
    assert load_settings({}).console_token is None
    token_file = tmp_path / "console-token"
    token_file.write_text("from-a-file\n")
    settings = load_settings({"TOPUP_CONSOLE_TOKEN_FILE": str(token_file)})
    assert settings.console_token == "from-a-file"
    assert "from-a-file" not in repr(settings)


def _record(topic: str, at_ms: int, value: bytes | None = b"x") -> ConsumedRecord:
    return ConsumedRecord(topic, 0, 0, None, value, {}, at_ms)


def test_the_funnel_counts_by_record_time_in_the_last_hour_only():
    now = 10_000_000
    funnel = count_funnel([
        _record(topics.CREDITS, now - 1),            # last bucket
        _record(topics.CREDITS, now - 3_600_000),    # first bucket
        _record(topics.CREDITS, now - 3_600_001),    # over an hour ago
        _record(topics.CREDITS, now),                # not yet (after now)
        _record(topics.DLQ, now - 1_800_000),
        _record(topics.ORDERS, now - 1, b"not avro"),  # undecodable: not an order
    ], now)
    assert funnel.counts["credits"] == [1] + [0] * 10 + [1]
    assert funnel.totals == {"orders": 0, "confirmed": 0, "credits": 2, "holds": 0,
                             "dead letters": 1, "breaks": 0}
    assert funnel.peak == 1


@pytest.mark.parametrize(("seconds", "shown"), [
    (5, "5 s"), (125, "2 min"), (3_700, "1 h 1 min"), (90_000, "1 d 1 h")])
def test_ages_read_as_an_operator_says_them(seconds: int, shown: str):
    assert _age(seconds) == shown


def test_ids_from_the_wire_are_shown_as_text_never_as_markup():
    hostile = '"><script>alert(1)</script>'
    case = Case("rc_1", hostile, "hmac", "PAYMENT_MISMATCH", {"note": hostile}, 0,
                "ON_HOLD", None)
    html = _environment().get_template("queue.html").render(
        base="/console", csrf="c", flash=hostile, error="",
        items=[QueueItem(case, 100, "USD", hostile, 5)])
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "/console/orders/%22%3E%3Cscript%3E" in html  # path segments are quoted


def test_the_recon_page_shows_the_match_rate_per_provider():
    breaks = [{"break_id": "b1", "category": "MISSING_CREDIT", "order_id": "o-1",
               "provider": "stripe", "expected_amount_minor": None, "actual_amount_minor": 5,
               "expected_currency": None, "actual_currency": "USD", "action": "MANUAL_REVIEW",
               "evidence": {}, "detected_at": 1}]
    report = build_report(breaks, matched_orders=4, matched_by_provider={"hmac": 3,
                                                                           "stripe": 1})
    html = _environment().get_template("recon.html").render(
        base="/console", csrf="c", flash="", error="", report=report, since_text="all")
    rows = re.findall(r'data-provider="([^"]+)">.*?class="num rate">([^<]+)<', html, re.S)
    assert rows == [("hmac", "100.00 %"), ("stripe", "50.00 %")]


def test_the_queue_shows_each_cases_velocity_counts():
    case = Case("rc_1", "o-1", "hmac", "RISK_REVIEW", {}, 0, "ON_HOLD", None)
    velocity = {"user.1h": "attempts=4 failures=3 successes=0 amount=9000 accounts=1"}
    html = _environment().get_template("queue.html").render(
        base="/console", csrf="c", flash="", error="",
        items=[QueueItem(case, 100, "USD", "a-1", 5, None, velocity),
               QueueItem(case, 50, "USD", "a-2", 5)])
    assert re.findall(r'data-velocity="([^"]+)"><td>[^<]+</td><td>([^<]+)<', html) == [
        ("user.1h", velocity["user.1h"])]
