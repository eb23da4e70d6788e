"""The control agent: operator commands in, broadcast to every order partition.

Every partition of the order agent must see every command, in order, among its own
events: a broadcast through an internal topic gives each partition its own copy, so a
freeze takes effect for the events after it on that partition, and a replay of the
partition decides the same (a global table would be read at whatever moment it arrived).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from streams import topics
from streams.agents.io import avro_decoder, correlation_headers, correlation_id, process, publish
from streams.codecs import DecodeError
from streams.domain.freeze import apply_command
from streams.domain.ids import derived_id

if TYPE_CHECKING:
    from streams.app import Pipeline


def register(pipeline: Pipeline) -> None:
    app, partitions = pipeline.app, pipeline.settings.partitions
    decode_avro = avro_decoder(pipeline, "ControlCommand")

    def decode(event):  # type: ignore[no-untyped-def]
        command = decode_avro(event)
        try:
            apply_command({}, command)
        except ValueError as exc:
            raise DecodeError("BAD_PAYLOAD", f"control command refused: {exc}") from None
        return command

    async def handle(event, command):  # type: ignore[no-untyped-def]
        value = json.dumps({"control": command}, separators=(",", ":")).encode()
        headers = correlation_headers(correlation_id(event))
        for partition in range(partitions):
            await pipeline.topics[topics.ORDER_COMMANDS].send(
                key=command["scope"].encode(), value=value, partition=partition, headers=headers
            )
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
        await publish(pipeline, topics.AUDIT, command["scope"], audit, headers)

    @app.agent(pipeline.topics[topics.CONTROL], name="control")
    async def control_agent(stream):  # type: ignore[no-untyped-def]
        await process(pipeline, stream, decode, handle)
