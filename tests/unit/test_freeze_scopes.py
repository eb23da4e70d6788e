"""Freeze scopes are normalised, so a freeze holds what it names; bad ones are refused."""

from __future__ import annotations

import pytest

from streams.config import PROVIDERS
from streams.domain.common.freeze import (
    ScopeError,
    apply_command,
    control_key,
    credits_frozen,
    normalise_scope,
)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("global", "global"),
        (" GLOBAL ", "global"),
        ("provider:HMAC", "provider:hmac"),
        ("provider:hmac ", "provider:hmac"),
        ("Provider: Stripe", "provider:stripe"),
        ("merchant:M-Ab", "merchant:M-Ab"),  # ids are exact: case is kept
        (" account:a-1\t", "account:a-1"),
    ],
)
def test_scopes_are_normalised(raw, canonical):
    assert normalise_scope(raw, PROVIDERS) == canonical


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("provider:paypal", "unknown provider"),
        ("provider:", "empty"),
        ("account:a 1", "spaces"),
        ("acct:a-1", "malformed"),
        ("a-1", "malformed"),
        ("", "malformed"),
    ],
)
def test_bad_scopes_are_refused_saying_why(raw, why):
    with pytest.raises(ScopeError, match=why):
        normalise_scope(raw, PROVIDERS)


def test_a_freeze_on_an_upper_case_provider_holds_that_providers_orders():
    active = apply_command({}, {"action": "FREEZE_CREDITS", "scope": "provider:HMAC "})
    assert active == {"provider:hmac": ["CREDITS"]}
    assert credits_frozen(active, "hmac", "m", "a")
    assert not credits_frozen(active, "stripe", "m", "a")


def test_the_control_key_is_scope_and_target():
    assert control_key("account:a-1", "FREEZE_CREDITS") == "account:a-1|credits"
    assert control_key("account:a-1", "UNFREEZE_REFUNDS") == "account:a-1|refunds"
