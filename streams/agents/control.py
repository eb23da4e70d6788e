"""The control stage: operator commands in, broadcast to every order partition.

Every partition of the order stage must see every command, in order, among its own
events: a broadcast through an internal topic gives each partition its own copy, so a
freeze takes effect for the events after it on that partition, and a replay of the
partition decides the same (a global table would be read at whatever moment it arrived).
"""

from __future__ import annotations

from typing import Any

from streams import topics, wire
from streams.agents.decoding import avro_decoder
from streams.codecs import DecodeError, SchemaCatalog
from streams.config import Settings
from streams.domain.freeze import apply_command
from streams.domain.ids import derived_id
from streams.runtime.context import Context, Record, Send, correlation_headers
from streams.runtime.stage import Stage


def stage(settings: Settings, catalog: SchemaCatalog) -> Stage:
    partitions = settings.partitions
    decode_avro = avro_decoder(catalog, "ControlCommand")

    def decode(record: Record) -> dict[str, Any]:
        command = decode_avro(record)
        try:
            apply_command({}, command)
        except ValueError as exc:
            raise DecodeError("BAD_PAYLOAD", f"control command refused: {exc}") from None
        return command

    def handle(ctx: Context, command: dict[str, Any]) -> None:
        value = wire.dumps({"control": command})
        headers = correlation_headers(ctx.record.correlation_id)
        for partition in range(partitions):
            ctx.send(Send(topics.ORDER_COMMANDS, command["scope"].encode(), value, headers,
                          partition=partition))
        audit = {
            "audit_id": derived_id("audit", "control", command["command_id"]),
            "subject": command["scope"],
            "action": command["action"],
            "rule": "operator-command",
            "inputs": {"command_id": command["command_id"], "reason": command["reason"]},
            "outcome": f"broadcast to {partitions} order partitions",
            "actor": command["issued_by"],
            "at": command["issued_at"],
        }
        ctx.publish(topics.AUDIT, command["scope"], audit, headers)

    return Stage("control", (topics.CONTROL,), (), decode, handle)
