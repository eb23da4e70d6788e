"""The operators' query functions, pure: what a console would reuse."""

from __future__ import annotations

import pytest

from streams.ops.freezes import OperatorError, command_for, fold_commands
from streams.ops.rebuild_balances import Difference, differences


def command(action: str, scope: str, at: int, by: str = "ops") -> dict:
    return {"command_id": f"c-{at}", "action": action, "scope": scope, "reason": "r",
            "issued_by": by, "issued_at": at}


def test_the_fold_keeps_credits_and_refunds_freezes_apart_and_skips_refused_scopes():
    active = fold_commands([
        command("FREEZE_REFUNDS", "account:a-1", 2),
        command("FREEZE_CREDITS", "account:a-1", 1, by="alice"),
        command("FREEZE_CREDITS", "provider:paypal", 3),  # refused by the control stage
        command("FREEZE_CREDITS", "provider:HMAC", 4),
        command("UNFREEZE_CREDITS", "provider:hmac ", 5),
    ])
    assert [(f.scope, f.what, f.frozen_by) for f in active] == [
        ("account:a-1", "credits", "alice"), ("account:a-1", "refunds", "ops")]


def test_a_request_is_refused_saying_why():
    active = fold_commands([command("FREEZE_CREDITS", "global", 1)])
    cases = [
        ((True, "global", "credits", "bob", "again"), "already frozen"),
        ((False, "global", "refunds", "bob", "lift"), "not frozen"),
        ((True, "acct:x", "credits", "bob", "typo"), "malformed"),
        ((True, "provider:paypal", "credits", "bob", "typo"), "unknown provider"),
        ((True, "global", "credits", " ", "no one"), "--by"),
        ((True, "global", "payouts", "bob", "what"), "--what"),
    ]
    for (freeze, scope, what, by, reason), why in cases:
        with pytest.raises(OperatorError, match=why):
            command_for(freeze, scope, what, by, reason, 10, active)
    issued = command_for(False, " GLOBAL", "credits", "bob", "all clear", 10, active)
    assert (issued["action"], issued["scope"], issued["issued_by"]) == (
        "UNFREEZE_CREDITS", "global", "bob")


def test_with_the_configured_providers_a_freeze_must_name_one_and_an_unfreeze_any_known():
    configured = {"hmac"}
    commands = [
        command("FREEZE_CREDITS", "provider:stripe", 1),  # refused by the control stage
        command("FREEZE_CREDITS", "provider:hmac", 2),
        command("FREEZE_REFUNDS", "provider:stripe", 3),  # frozen while stripe was configured
    ]
    active = fold_commands([*commands[:2], command("UNFREEZE_REFUNDS", "provider:stripe", 4)],
                           configured)
    assert [(f.scope, f.what) for f in active] == [("provider:hmac", "credits")]
    # The CLI, which may not know the worker's secrets, folds with the known providers.
    assert len(fold_commands(commands)) == 3
    with pytest.raises(OperatorError, match=r"expected one of \['hmac'\]"):
        command_for(True, "provider:stripe", "credits", "bob", "x", 10, active, configured)
    stale = fold_commands(commands)  # a refunds freeze on stripe from before
    lifted = command_for(False, "provider:stripe", "refunds", "bob", "retired", 10, stale,
                         configured)
    assert (lifted["action"], lifted["scope"]) == ("UNFREEZE_REFUNDS", "provider:stripe")


def test_differences_name_every_account_that_disagrees_and_ignore_zero_balances():
    rebuilt = {"a": {"USD": 100}, "b": {"USD": 0}, "c": {"USD": 5}}
    live = {"a": {"USD": 100}, "c": {"USD": 4}, "d": {"EUR": 1}}
    assert differences(rebuilt, live) == [
        Difference("c", {"USD": 5}, {"USD": 4}), Difference("d", None, {"EUR": 1})]
