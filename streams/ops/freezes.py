"""Containment: issue freeze and unfreeze commands, and list the freezes in force.

The active freezes are folded from `topup.control` itself, in the order the commands were
issued, with the same normalisation and refusal rules as the control stage, so what this
lists is what the order stage holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from streams import topics
from streams.codecs import DecodeError, SchemaCatalog, default_catalog
from streams.config import PROVIDERS, Settings
from streams.domain.common.freeze import (
    FreezeAction,
    ScopeError,
    control_key,
    is_freeze,
    normalise_scope,
    target_of,
)
from streams.kafka_clients import ConsumedRecord, producer
from streams.ops.scan import ProgressHook, scan

WHATS = ("credits", "refunds")


class OperatorError(Exception):
    """An operator action refused because its arguments are wrong; the message says why."""


@dataclass(frozen=True)
class ActiveFreeze:
    scope: str
    what: str  # credits | refunds
    frozen_by: str
    frozen_at: int
    reason: str
    command_id: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fold_commands(
    commands: Iterable[dict[str, Any]], providers: Collection[str] = PROVIDERS
) -> list[ActiveFreeze]:
    """The freezes in force after the commands, in issue order; refused commands (bad
    scope) change nothing, as in the control stage. `providers`: those a freeze may name
    (the worker's configured ones when known; an unfreeze may name any known one)."""
    active: dict[tuple[str, str], ActiveFreeze] = {}
    for command in sorted(commands, key=lambda c: c["issued_at"]):
        try:
            allowed = providers if is_freeze(command["action"]) else PROVIDERS
            scope = normalise_scope(command["scope"], allowed)
        except ScopeError:
            continue
        what = target_of(command["action"]).value.lower()
        if is_freeze(command["action"]):
            active[(scope, what)] = ActiveFreeze(
                scope, what, command["issued_by"], command["issued_at"], command["reason"],
                command["command_id"],
            )
        else:
            active.pop((scope, what), None)
    return sorted(active.values(), key=lambda f: (f.frozen_at, f.scope, f.what))


def decode_commands(records: Iterable[ConsumedRecord], catalog: SchemaCatalog) -> list[dict]:
    commands = []
    for record in records:
        if record.topic == topics.CONTROL and record.value is not None:
            try:
                commands.append(catalog.decode("ControlCommand", record.value))
            except DecodeError:
                continue  # bad bytes: the control stage dead-letters them
    return commands


def active_freezes(
    settings: Settings, progress: ProgressHook | None = None,
    providers: Collection[str] = PROVIDERS,
) -> list[ActiveFreeze]:
    records = scan(settings, [topics.CONTROL], progress=progress)
    return fold_commands(decode_commands(records, default_catalog()), providers)


def checked_request(scope: str, what: str, by: str, reason: str,
                    providers: Collection[str] = PROVIDERS) -> str:
    """The normalised scope of a well-formed request, or OperatorError saying what is wrong
    (checked before anything is read or written)."""
    if not by.strip() or not reason.strip():
        raise OperatorError("--by and --reason must not be empty")
    if what not in WHATS:
        raise OperatorError(f"--what must be one of {list(WHATS)}, not {what!r}")
    try:
        return normalise_scope(scope, providers)
    except ScopeError as exc:
        raise OperatorError(str(exc)) from None


def command_for(
    freeze: bool, scope: str, what: str, by: str, reason: str, now_ms: int,
    active: list[ActiveFreeze], providers: Collection[str] = PROVIDERS,
) -> dict[str, Any]:
    """The ControlCommand for one operator request, or OperatorError saying why not."""
    scope = checked_request(scope, what, by, reason, providers if freeze else PROVIDERS)
    current = next((f for f in active if (f.scope, f.what) == (scope, what)), None)
    if freeze and current is not None:
        raise OperatorError(
            f"{what} on {scope} are already frozen (by {current.frozen_by}: {current.reason})"
        )
    if not freeze and current is None:
        raise OperatorError(f"{what} on {scope} are not frozen: nothing to unfreeze")
    action = FreezeAction(f"{'' if freeze else 'UN'}FREEZE_{what.upper()}")
    return {
        "command_id": f"cmd-{uuid.uuid4()}",
        "action": action.value,
        "scope": scope,
        "reason": reason.strip(),
        "issued_by": by.strip(),
        "issued_at": now_ms,
    }


def request(
    settings: Settings, freeze: bool, scope: str, what: str, by: str, reason: str,
    now_ms: int, progress: ProgressHook | None = None,
    providers: Collection[str] = PROVIDERS,
) -> dict[str, Any]:
    """Check a freeze or unfreeze request against the freezes in force and issue it; the
    command issued, or OperatorError. The control stage writes its audit record.

    `providers`: those a freeze may name. The CLI may run without the worker's secrets,
    so it checks the known ones and leaves the configured ones to the control stage; the
    console, in the worker's process, passes the configured ones."""
    checked_request(scope, what, by, reason, providers if freeze else PROVIDERS)
    command = command_for(freeze, scope, what, by, reason, now_ms,
                          active_freezes(settings, progress, providers), providers)
    issue(settings, command)
    return command


def issue(settings: Settings, command: dict[str, Any]) -> None:
    """Produce one ControlCommand to `topup.control`, keyed by scope and target."""
    client = producer(settings, acks="all")
    client.produce(
        topics.CONTROL,
        key=control_key(command["scope"], command["action"]),
        value=default_catalog().encode("ControlCommand", command),
    )
    if client.flush(30) != 0:
        raise OperatorError("topup.control did not acknowledge the command within 30 s")
