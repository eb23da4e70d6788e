"""Who may use the console: the operator token, a session cookie derived from it, CSRF.

Both the cookie and the CSRF token are HMACs of the operator token, so the worker keeps no
session table and every worker of the group accepts them; changing the token revokes
every session. Comparisons are constant-time, and the token is never logged or rendered.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

COOKIE = "topup_console"
CSRF_FIELD = "csrf"


def _mac(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def session_value(token: str) -> str:
    return _mac(token, "console-session-v1")


def csrf_value(token: str) -> str:
    return _mac(token, "console-csrf-v1")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def authenticated(request: web.Request, token: str) -> bool:
    bearer = request.headers.get("Authorization", "")
    if bearer and _same(bearer, f"Bearer {token}"):
        return True
    return _same(request.cookies.get(COOKIE, ""), session_value(token))


def token_matches(given: str, token: str) -> bool:
    return _same(given, token)


def csrf_ok(request: web.Request, form_value: str, token: str) -> bool:
    """A POST must carry the form's CSRF token and, when the browser says where it comes
    from, come from this very host (a second line if the token ever leaked into a page)."""
    origin = request.headers.get("Origin")
    if origin and origin not in {f"http://{request.host}", f"https://{request.host}"}:
        return False
    return _same(form_value, csrf_value(token))
