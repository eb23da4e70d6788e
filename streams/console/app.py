"""The console's routes: review queue, order trace, account ledger, freezes, login.

Every write is a POST carrying the CSRF token and the operator's name, and goes through
the same `streams.ops` function as the CLI, so it produces the same contract records and
audit (REVIEW_* on topup.orders with its audit record; freezes on topup.control, audited
by the control stage).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from streams.config import Settings
from streams.console import auth
from streams.console.funnel import SERIES, last_hour
from streams.console.queries import review_queue
from streams.domain.common.configured_providers import configured_providers
from streams.ops.freezes import WHATS, OperatorError, active_freezes
from streams.ops.freezes import request as request_freeze
from streams.ops.reviews import DECISIONS, decide
from streams.ops.trace import trace_account, trace_order
from streams.recon_report_cli import parse_since, recon_report
from streams.web import RateLimiter

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TEMPLATES = Path(__file__).with_name("templates")
TOKEN_KEY = web.AppKey("console_token", str)
OPEN_PATHS = {"/login"}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        # Order ids, user ids and reasons come from the wire: everything is escaped.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = lambda ms: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
    env.filters["path"] = lambda value: quote(str(value), safe="")
    env.filters["age"] = _age
    return env


def _age(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    return f"{days} d {hours} h" if days else f"{hours} h {minutes} min" if hours else (
        f"{minutes} min" if minutes else f"{seconds} s")


def _now_ms() -> int:
    return int(time.time() * 1000)


def build_console_app(settings: Settings, token: str) -> web.Application:
    """The console, to mount with `app.add_subapp("/console", ...)`."""
    templates = _environment()
    csrf = auth.csrf_value(token)
    # In the worker's process: refuse a freeze the control stage would refuse (a provider
    # without webhook secrets), and list freezes as it folded them.
    providers = configured_providers(settings)
    # Guessing the token through the login form: 10 tries, then one every 6 s per address.
    logins = RateLimiter(rate=1 / 6, burst=10)

    def page(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
        html = templates.get_template(name).render(
            base=request.app.router["queue"].url_for().path.rstrip("/"),
            csrf=csrf, flash=request.query.get("flash", ""),
            error=request.query.get("error", ""), **context)
        return web.Response(text=html, status=status, content_type="text/html", headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "img-src 'self'; form-action 'self'",
            "X-Frame-Options": "DENY",
            # same-origin, not no-referrer: under no-referrer the browser sends "Origin: null",
            # which the CSRF check must refuse.
            "Referrer-Policy": "same-origin",
        })

    def back(request: web.Request, to: str, **query: str) -> web.HTTPSeeOther:
        base = request.app.router["queue"].url_for().path.rstrip("/")
        suffix = f"?{urlencode(query)}" if query else ""
        return web.HTTPSeeOther(f"{base}{to}{suffix}")

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        relative = request.path.removeprefix(
            request.app.router["queue"].url_for().path.rstrip("/"))
        if relative == "":  # "/console", as an operator types it: the queue is at "/console/"
            return web.HTTPFound(f"{request.path}/")
        if relative not in OPEN_PATHS and not auth.authenticated(request, token):
            if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                # A browser is sent to the login form, still with the 401 status.
                return page(request, "login.html", status=401, failed=False)
            return web.Response(status=401, text="console: missing or wrong operator token",
                                headers={"WWW-Authenticate": "Bearer"})
        if request.method == "POST":
            form = await request.post()
            if relative not in OPEN_PATHS and not auth.csrf_ok(
                    request, str(form.get(auth.CSRF_FIELD, "")), token):
                return web.Response(status=403, text="console: bad or missing CSRF token")
        return await handler(request)

    async def login_form(request: web.Request) -> web.Response:
        return page(request, "login.html", failed=False)

    async def login(request: web.Request) -> web.StreamResponse:
        if not logins.allow(request.remote or "unknown", time.monotonic()):
            return web.Response(status=429, text="console: too many login attempts")
        form = await request.post()
        if not auth.token_matches(str(form.get("token", "")), token):
            return page(request, "login.html", status=401, failed=True)
        response = back(request, "/")
        base = request.app.router["queue"].url_for().path.rstrip("/") or "/"
        response.set_cookie(auth.COOKIE, auth.session_value(token), httponly=True,
                            secure=True, samesite="Strict", path=base)
        return response

    async def logout(request: web.Request) -> web.StreamResponse:
        # A POST with CSRF (the guard checks it), so no other site can log an operator
        # out. The cookie is stateless (an HMAC of the token): this removes it from the
        # browser, and only a new token revokes a copy taken before.
        response = back(request, "/login", flash="logged out")
        base = request.app.router["queue"].url_for().path.rstrip("/") or "/"
        response.del_cookie(auth.COOKIE, path=base, secure=True, httponly=True,
                            samesite="Strict")
        return response

    async def queue(request: web.Request) -> web.Response:
        items = await asyncio.to_thread(review_queue, settings, _now_ms())
        return page(request, "queue.html", items=items)

    async def review(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        case_id = request.match_info["case_id"]
        decision = str(form.get("decision", ""))
        if decision not in DECISIONS:
            return back(request, "/", error=f"unknown decision {decision[:20]!r}")
        try:
            event = await asyncio.to_thread(
                decide, settings, case_id, decision, str(form.get("by", "")),
                str(form.get("note", "")), _now_ms())
        except OperatorError as exc:
            return back(request, "/", error=str(exc))
        return back(request, "/", flash=f"{event['type']} issued for order {event['order_id']}")

    async def order(request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        trace = await asyncio.to_thread(trace_order, settings, order_id)
        return page(request, "order.html", status=200 if trace.found else 404,
                    order_id=order_id, evidence=trace.evidence)

    async def find(request: web.Request) -> web.StreamResponse:
        # The navigation bar's lookup form (a GET, no JavaScript): on to the page itself.
        for kind in ("order", "account"):
            wanted = request.query.get(kind, "").strip()
            if wanted:
                return back(request, f"/{kind}s/{quote(wanted, safe='')}")
        return back(request, "/")

    async def account(request: web.Request) -> web.Response:
        account_id = request.match_info["account_id"]
        ledger = await asyncio.to_thread(trace_account, settings, account_id)
        return page(request, "account.html", status=200 if ledger.entries else 404,
                    account_id=account_id, entries=ledger.entries,
                    balance=sorted(ledger.balance.items()))

    async def freezes(request: web.Request) -> web.Response:
        active = await asyncio.to_thread(active_freezes, settings, None, providers)
        return page(request, "freezes.html", active=active, whats=WHATS)

    async def change_freeze(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        action = str(form.get("action", ""))
        if action not in {"freeze", "unfreeze"}:
            return back(request, "/freezes", error="action must be freeze or unfreeze")
        try:
            command = await asyncio.to_thread(
                request_freeze, settings, action == "freeze", str(form.get("scope", "")),
                str(form.get("what", "")), str(form.get("by", "")),
                str(form.get("reason", "")), _now_ms(), None, providers)
        except OperatorError as exc:
            return back(request, "/freezes", error=str(exc))
        return back(request, "/freezes", flash=f"{command['action']} on {command['scope']} "
                                                f"issued as {command['command_id']}")

    async def recon(request: web.Request) -> web.Response:
        # Today (UTC) unless ?since= says otherwise (an ISO date or epoch ms; "all").
        since_text = request.query.get("since", "")
        try:
            since = (None if since_text == "all" else parse_since(since_text)
                     if since_text else _now_ms() // 86_400_000 * 86_400_000)
        except ValueError:
            return page(request, "recon.html", status=400, report=None, since_text=since_text)
        report = await asyncio.to_thread(recon_report, settings, since)
        return page(request, "recon.html", report=report, since_text=since_text)

    async def funnel(request: web.Request) -> web.Response:
        counts = await asyncio.to_thread(last_hour, settings, _now_ms())
        return page(request, "funnel.html", funnel=counts, series=SERIES)

    app = web.Application(middlewares=[guard])
    app[TOKEN_KEY] = token
    app.router.add_get("/", queue, name="queue")
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_post("/reviews/{case_id}", review)
    app.router.add_get("/find", find)
    app.router.add_get("/orders/{order_id}", order)
    app.router.add_get("/accounts/{account_id}", account)
    app.router.add_get("/freezes", freezes)
    app.router.add_post("/freezes", change_freeze)
    app.router.add_get("/recon", recon)
    app.router.add_get("/funnel", funnel)
    return app

