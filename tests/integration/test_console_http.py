"""The operator console over plain HTTP, against a real worker and broker: the token,
CSRF, the review queue and a decision, the order and account pages, freezes."""

from __future__ import annotations

import http.client
import re
from urllib.parse import quote, urlencode, urlsplit

from streams import topics
from streams.ops.scan import scan
from tests.integration.console_fixtures import (
    HOSTILE,
    OUTPUTS,
    TOKEN,
    Console,
    console_with_held_orders,
    statuses,
)
from tests.kafka_harness import decode_all, read_until

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def call(console: Console, method: str, path: str, form: dict | None = None,
         headers: dict | None = None) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of one request, redirects not followed."""
    url = urlsplit(console.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    body = urlencode(form).encode() if form is not None else None
    sent = dict(headers or {})
    if body is not None:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    connection.request(method, url.path + path, body=body, headers=sent)
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, text


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match, page
    return match.group(1)


def operator_writes(console: Console) -> list[dict]:
    """Every review decision on topup.orders and every command on topup.control so far."""
    records = list(scan(console.settings, [topics.ORDERS, topics.CONTROL]))
    reviews = [e for e in decode_all(records, topics.ORDERS) if e["type"].startswith("REVIEW")]
    return reviews + decode_all(records, topics.CONTROL)


def test_console_needs_the_token_and_csrf_and_decides_like_the_cli(kafka_env, workers):
    held = {"o-con-small": 100, "o-con-big": 5000, HOSTILE: 300}
    console = console_with_held_orders(kafka_env, workers, held)

    status, headers, _ = call(console, "GET", "")
    assert status == 302 and headers["location"] == "/console/"
    # Without the token, or with a wrong one, nothing is shown.
    assert call(console, "GET", "/")[0] == 401
    assert call(console, "GET", "/", headers={"Authorization": "Bearer nope"})[0] == 401
    assert call(console, "GET", "/orders/o-con-big")[0] == 401

    status, _, page = call(console, "GET", "/", headers=BEARER)
    assert status == 200
    assert TOKEN not in page
    rows = re.findall(r'<tr class="case" data-order="([^"]*)"', page)
    # The most money at stake first; the hostile id shows as text, never as markup.
    assert rows == ["o-con-big", "o-&lt;b&gt;x&lt;/b&gt;&amp;&#34;q", "o-con-small"]
    assert "<b>x</b>" not in page
    assert "5000 USD" in page
    # Cases show the velocity counts their risk decision saw (from the risk audit; a
    # dimension that did not answer in time has none).
    velocity = re.findall(r'data-velocity="([^"]+)"><td>[^<]+</td><td>([^<]+)<', page)
    assert velocity and all(counts.startswith("attempts=") for _, counts in velocity)
    cases = dict(re.findall(r'data-order="([^"]*)".*?action="/console/reviews/([^"]+)"',
                            page, re.S))
    csrf = csrf_of(page)
    approve = {"decision": "approve", "by": "ann@risk", "note": "customer confirmed"}

    # A write without the token, or with a bad or missing CSRF token, changes nothing.
    before = operator_writes(console)
    assert call(console, "POST", f"/reviews/{cases['o-con-big']}", {**approve, "csrf": csrf}
                )[0] == 401
    assert call(console, "POST", f"/reviews/{cases['o-con-big']}", {**approve, "csrf": "0" * 64},
                BEARER)[0] == 403
    assert call(console, "POST", f"/reviews/{cases['o-con-big']}", approve, BEARER)[0] == 403
    assert call(console, "POST", "/freezes",
                {"action": "freeze", "scope": "global", "what": "credits", "by": "mallory",
                 "reason": "x", "csrf": csrf},
                {**BEARER, "Origin": "http://evil.example"})[0] == 403
    assert operator_writes(console) == before == []

    # The login form sets an HttpOnly, Secure, SameSite session cookie; a wrong token none.
    status, headers, _ = call(console, "POST", "/login", {"token": "wrong"})
    assert status == 401 and "set-cookie" not in headers
    status, headers, _ = call(console, "POST", "/login", {"token": TOKEN})
    assert status == 303
    cookie = headers["set-cookie"]
    assert all(flag in cookie for flag in ("HttpOnly", "Secure", "SameSite=Strict"))
    assert TOKEN not in cookie
    session = {"Cookie": cookie.split(";")[0]}
    assert call(console, "GET", "/", headers=session)[0] == 200

    # An approval with the CSRF token (over the cookie session) is the CLI's decision.
    status, headers, _ = call(console, "POST", f"/reviews/{cases['o-con-big']}",
                              {**approve, "csrf": csrf}, session)
    assert status == 303 and "REVIEW_APPROVED" in headers["location"]
    again = call(console, "POST", f"/reviews/{cases['o-con-big']}",
                 {**approve, "csrf": csrf}, BEARER)
    assert again[0] == 303 and "already+decided" in again[1]["location"]
    done = read_until(console.settings, OUTPUTS,
                      lambda rs: statuses(rs).get("o-con-big") == "CREDITED",
                      workers=[console.worker])
    credits = [c for c in decode_all(done, topics.CREDITS) if c["order_id"] == "o-con-big"]
    assert len(credits) == 1
    audits = [a for a in decode_all(done, topics.AUDIT) if a["subject"] == "o-con-big"
              and a["action"] == "REVIEW_APPROVED_ISSUED"]
    assert [(a["actor"], a["inputs"]["note"]) for a in audits] == [
        ("ann@risk", "customer confirmed")]
    queue = call(console, "GET", "/", headers=BEARER)[2]
    assert 'data-order="o-con-big"' not in queue and 'data-order="o-con-small"' in queue

    # The order page shows the chain down to the credit; the account page its ledger.
    status, _, order = call(console, "GET", "/orders/o-con-big", headers=BEARER)
    assert status == 200
    kinds = re.findall(r'data-topic="([^"]+)"', order)
    assert {topics.ORDERS, topics.REVIEW_CASES, topics.CREDITS, topics.ORDER_STATUS} <= set(
        kinds)
    assert kinds.index(topics.REVIEW_CASES) < kinds.index(topics.CREDITS)
    status, _, account = call(console, "GET", f"/accounts/{credits[0]['account_id']}",
                              headers=BEARER)
    assert status == 200 and credits[0]["entry_id"] in account
    balance = re.search(r'id="balance">[^<]*?(\d+) USD', account)
    assert balance and int(balance.group(1)) == credits[0]["amount_minor"] + credits[0][
        "bonus_minor"]
    status, _, hostile = call(console, "GET", f"/orders/{quote(HOSTILE, safe='')}",
                              headers=BEARER)
    assert status == 200 and "<b>x</b>" not in hostile and "&lt;b&gt;x&lt;/b&gt;" in hostile
    assert call(console, "GET", "/orders/o-never-seen", headers=BEARER)[0] == 404
    status, headers, _ = call(console, "GET", f"/find?{urlencode({'order': HOSTILE})}",
                              headers=BEARER)
    assert status == 303 and headers["location"].startswith("/console/orders/")
    found = call(console, "GET", headers["location"].removeprefix("/console"), headers=BEARER)
    assert found[0] == 200 and 'id="order-id">o-&lt;b&gt;x&lt;/b&gt;&amp;&#34;q<' in found[2]

    # A freeze through the form is on topup.control, listed, and lifted the same way.
    freeze = {"action": "freeze", "scope": "merchant:m-con", "what": "credits",
              "by": "ann@risk", "reason": "chargeback wave", "csrf": csrf}
    status, headers, _ = call(console, "POST", "/freezes", freeze, BEARER)
    assert status == 303 and "FREEZE_CREDITS" in headers["location"]
    listed = call(console, "GET", "/freezes", headers=BEARER)[2]
    assert 'data-scope="merchant:m-con" data-what="credits"' in listed
    assert "chargeback wave" in listed
    status, headers, _ = call(console, "POST", "/freezes", freeze, BEARER)
    assert status == 303 and "already+frozen" in headers["location"]
    lift = {**freeze, "action": "unfreeze", "reason": "wave over"}
    assert call(console, "POST", "/freezes", lift, BEARER)[0] == 303
    assert 'data-scope="merchant:m-con"' not in call(console, "GET", "/freezes",
                                                      headers=BEARER)[2]
    # A freeze on a provider without webhook secrets here would hold nothing: refused
    # before it is issued, as the control stage would refuse it.
    stripe = {**freeze, "scope": "provider:stripe"}
    status, headers, _ = call(console, "POST", "/freezes", stripe, BEARER)
    assert status == 303 and "error=unknown+provider" in headers["location"]
    commands = [c for c in operator_writes(console) if "action" in c]
    assert [(c["action"], c["issued_by"]) for c in commands] == [
        ("FREEZE_CREDITS", "ann@risk"), ("UNFREEZE_CREDITS", "ann@risk")]

    # The funnel counts the last hour's work from the topics; the recon page renders.
    status, _, funnel = call(console, "GET", "/funnel", headers=BEARER)
    assert status == 200
    totals = dict(re.findall(r'data-series="([^"]+)" data-total="(\d+)"', funnel))
    assert {name: int(totals[name]) for name in ("orders", "holds", "credits")} == {
        "orders": 3, "holds": 3, "credits": 1}
    assert funnel.count("<rect ") == 6 * 12
    status, _, recon = call(console, "GET", "/recon?since=all", headers=BEARER)
    assert status == 200 and 'id="summary">0 break(s)' in recon
    assert call(console, "GET", "/recon?since=yesterday-ish", headers=BEARER)[0] == 400

    # Logging out is a POST with CSRF, and clears the session cookie in the browser.
    assert call(console, "POST", "/logout", {}, session)[0] == 403
    status, headers, _ = call(console, "POST", "/logout", {"csrf": csrf}, session)
    assert status == 303 and headers["location"] == "/console/login?flash=logged+out"
    cleared = headers["set-cookie"]
    assert cleared.startswith('topup_console=""') and "Max-Age=0" in cleared, cleared
    assert "Path=/console" in cleared
    assert call(console, "GET", "/", headers={"Cookie": cleared.split(";")[0]})[0] == 401
    status, _, login = call(console, "GET", "/login?flash=logged+out")
    assert status == 200 and "logged out" in login and 'name="csrf"' not in login

    # Guessing the token through the login form is cut short.
    tries = [call(console, "POST", "/login", {"token": f"guess-{n}"})[0] for n in range(12)]
    assert set(tries[:8]) == {401} and tries[-1] == 429
