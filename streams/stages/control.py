"""The control stage: operator commands in, broadcast to every order partition.

Every partition of the order stage must see every command, in order, among its own
events: a broadcast through an internal topic gives each partition its own copy, so a
freeze takes effect for the events after it on that partition, and a replay of the
partition decides the same (a global table would be read at whatever moment it arrived).

The scope is normalised here, once, so the order stage only ever sees canonical scopes.
A command whose scope is malformed or names an unknown provider would otherwise be
accepted and freeze nothing: it is refused with an alert and an audit record saying why,
and broadcast to no one. The record's key is not read, so commands keyed the old way
(scope alone) and the new way (`scope|target`) both work.
"""

from __future__ import annotations

from typing import Any

from streams import topics
from streams.codecs import SchemaCatalog
from streams.config import PROVIDERS, Settings
from streams.domain.common.configured_providers import configured_providers
from streams.domain.common.freeze import ScopeError, control_key, is_freeze, normalise_scope
from streams.domain.common.ids import derived_id
from streams.domain.common.outputs import AlertOut, AuditOut, Severity
from streams.internal_records import OrderCommand
from streams.runtime.context import Context, Headers, Send, correlation_headers
from streams.runtime.stage import Stage
from streams.stages.decoding import avro_decoder

REFUSED_KIND = "CONTROL_COMMAND_REFUSED"


def _audit(command: dict[str, Any], subject: str, outcome: str, **inputs: str) -> AuditOut:
    return AuditOut(
        audit_id=derived_id("audit", "control", command["command_id"]),
        subject=subject,
        action=command["action"],
        rule="operator-command",
        inputs={"command_id": command["command_id"], "reason": command["reason"], **inputs},
        outcome=outcome,
        actor=command["issued_by"],
        at=command["issued_at"],
    )


def _refuse(ctx: Context, command: dict[str, Any], why: str, headers: Headers | None) -> None:
    raw = command["scope"]
    alert = AlertOut(
        alert_id=derived_id("alert", "control-refused", command["command_id"]),
        kind=REFUSED_KIND,
        severity=Severity.WARN,
        order_id=None,
        provider=None,
        details={"command_id": command["command_id"], "action": command["action"],
                 "scope": raw, "issued_by": command["issued_by"], "why": why},
        raised_at=command["issued_at"],
    )
    ctx.publish(topics.ALERTS, alert.key, alert.to_record(), headers)
    audit = _audit(command, raw, f"refused: {why}", scope=raw)
    ctx.publish(topics.AUDIT, audit.key, audit.to_record(), headers)
    ctx.metrics.inc("topup_alerts_total", kind=REFUSED_KIND)


def stage(settings: Settings, catalog: SchemaCatalog) -> Stage:
    partitions = settings.partitions
    decode = avro_decoder(catalog, "ControlCommand")
    # A freeze on a provider without webhook secrets would hold nothing: none of its
    # payments can arrive (and its orders and settlement records are refused). Lifting
    # one stays possible, so a freeze outlives no change of configuration.
    configured = configured_providers(settings)

    def handle(ctx: Context, command: dict[str, Any]) -> None:
        headers = correlation_headers(ctx.record.correlation_id)
        try:
            providers = configured if is_freeze(command["action"]) else PROVIDERS
            scope = normalise_scope(command["scope"], providers)
        except ScopeError as exc:
            _refuse(ctx, command, str(exc), headers)
            return
        raw_scope = command["scope"]
        command = {**command, "scope": scope}
        value = topics.ORDER_COMMANDS_TOPIC.encode(OrderCommand(command))
        key = control_key(scope, command["action"]).encode()
        for partition in range(partitions):
            ctx.send(Send(topics.ORDER_COMMANDS, key, value, headers, partition=partition))
        inputs = {"scope_as_issued": raw_scope} if raw_scope != scope else {}
        outcome = f"broadcast to {partitions} order partitions"
        audit = _audit(command, scope, outcome, **inputs)
        ctx.publish(topics.AUDIT, audit.key, audit.to_record(), headers)

    return Stage("control", (topics.CONTROL,), (), decode, handle,
                 outputs=(topics.ORDER_COMMANDS, topics.AUDIT, topics.ALERTS))
