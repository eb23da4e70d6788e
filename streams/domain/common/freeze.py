"""Operator freezes: which scopes are frozen, and whether one order falls inside them.

The active set maps a scope ("global", "provider:<p>", "merchant:<m>", "account:<a>") to
the targets frozen there. Values are plain sorted lists of strings so the mapping can live
as-is in a JSON table.

A scope is normalised before it is used (`normalise_scope`): a freeze on "provider:HMAC"
or "provider:hmac " must freeze what "provider:hmac" names, not a scope no order is in.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import StrEnum
from typing import Any


class FreezeAction(StrEnum):
    FREEZE_CREDITS = "FREEZE_CREDITS"
    UNFREEZE_CREDITS = "UNFREEZE_CREDITS"
    FREEZE_REFUNDS = "FREEZE_REFUNDS"
    UNFREEZE_REFUNDS = "UNFREEZE_REFUNDS"


class FreezeTarget(StrEnum):
    CREDITS = "CREDITS"
    REFUNDS = "REFUNDS"


GLOBAL_SCOPE = "global"
_SCOPE_KINDS = ("provider", "merchant", "account")

# action -> (target it touches, frozen afterwards)
_EFFECT: Mapping[FreezeAction, tuple[FreezeTarget, bool]] = {
    FreezeAction.FREEZE_CREDITS: (FreezeTarget.CREDITS, True),
    FreezeAction.UNFREEZE_CREDITS: (FreezeTarget.CREDITS, False),
    FreezeAction.FREEZE_REFUNDS: (FreezeTarget.REFUNDS, True),
    FreezeAction.UNFREEZE_REFUNDS: (FreezeTarget.REFUNDS, False),
}

ActiveFreezes = Mapping[str, Collection[str]]


class ScopeError(ValueError):
    """A scope that names nothing a freeze could hold: malformed, or an unknown provider."""


def normalise_scope(raw: str, providers: Collection[str] | None = None) -> str:
    """The canonical form of a scope: kind and provider lower-case, no surrounding
    whitespace; merchant and account ids are kept exactly (they are case-sensitive ids).

    With `providers`, a provider scope must name one of them. Raises ScopeError.
    """
    text = raw.strip()
    if text.lower() == GLOBAL_SCOPE:
        return GLOBAL_SCOPE
    kind, sep, value = text.partition(":")
    kind, value = kind.strip().lower(), value.strip()
    if not sep or kind not in _SCOPE_KINDS:
        raise ScopeError(
            f"malformed freeze scope {raw!r}: expected global, provider:<p>, merchant:<m> "
            "or account:<a>"
        )
    if not value or any(char.isspace() for char in value):
        raise ScopeError(f"malformed freeze scope {raw!r}: the {kind} id is empty or has spaces")
    if kind == "provider":
        value = value.lower()
        if providers is not None and value not in providers:
            raise ScopeError(
                f"unknown provider in freeze scope {raw!r}: expected one of {sorted(providers)}"
            )
    return f"{kind}:{value}"


def validate_scope(scope: str) -> str:
    """The normalised scope, or ScopeError (a ValueError) if it names no known kind."""
    return normalise_scope(scope)


def target_of(action: FreezeAction | str) -> FreezeTarget:
    try:
        return _EFFECT[FreezeAction(action)][0]
    except ValueError:
        raise ValueError(f"unknown freeze action {action!r}") from None


def is_freeze(action: FreezeAction | str) -> bool:
    """True for FREEZE_*, False for UNFREEZE_*."""
    try:
        return _EFFECT[FreezeAction(action)][1]
    except ValueError:
        raise ValueError(f"unknown freeze action {action!r}") from None


def control_key(scope: str, action: FreezeAction | str) -> str:
    """The compaction key of `topup.control`: scope and target (`account:a-1|credits`), so a
    credits freeze and a refunds freeze on one scope do not compact into one record."""
    return f"{scope}|{target_of(action).value.lower()}"


def targets_after(frozen: Collection[str], action: FreezeAction | str) -> list[str]:
    """The targets frozen in one scope after `action` is applied there."""
    try:
        target, freeze = _EFFECT[FreezeAction(action)]
    except ValueError:
        raise ValueError(f"unknown freeze action {action!r}") from None
    targets = set(frozen) - {target}
    if freeze:
        targets.add(target)
    return sorted(targets)


def apply_command(active: ActiveFreezes, command: Mapping[str, Any]) -> dict[str, list[str]]:
    """The active set after one `topup.control` ControlCommand; `active` is not modified.

    Raises ValueError for an unknown action or scope, so the caller can dead-letter it.
    """
    scope = validate_scope(str(command.get("scope", "")))
    targets = targets_after(active.get(scope, ()), str(command.get("action", "")))
    updated = {key: sorted(value) for key, value in active.items() if key != scope}
    if targets:
        updated[scope] = targets
    return updated


def scopes_of(provider: str | None, merchant_id: str | None, account_id: str | None) -> list[str]:
    """Every scope one order belongs to; an unknown attribute matches no scope of its kind."""
    scopes = [GLOBAL_SCOPE]
    # Providers are matched lower-case, as normalise_scope writes them.
    provider = provider.lower() if provider else provider
    for kind, value in zip(_SCOPE_KINDS, (provider, merchant_id, account_id), strict=True):
        if value:
            scopes.append(f"{kind}:{value}")
    return scopes


def _frozen(active: ActiveFreezes, target: FreezeTarget, scopes: list[str]) -> bool:
    return any(target in active.get(scope, ()) for scope in scopes)


def credits_frozen(
    active: ActiveFreezes, provider: str | None, merchant_id: str | None, account_id: str | None
) -> bool:
    return bool(active) and _frozen(active, FreezeTarget.CREDITS,
                                    scopes_of(provider, merchant_id, account_id))


def refunds_frozen(
    active: ActiveFreezes, provider: str | None, merchant_id: str | None, account_id: str | None
) -> bool:
    return bool(active) and _frozen(active, FreezeTarget.REFUNDS,
                                    scopes_of(provider, merchant_id, account_id))
