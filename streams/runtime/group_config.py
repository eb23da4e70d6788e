"""The consumer group's liveness settings under KIP-848, set on the group at start.

With `group.protocol=consumer` the session timeout and heartbeat interval are the
coordinator's, not the client's (librdkafka refuses `session.timeout.ms` there). The
worker sets them as group configs, so `TOPUP_SESSION_TIMEOUT_S` keeps its meaning; a
short heartbeat also makes a handed-over partition reach its new owner sooner, since
each step of an incremental rebalance travels in a heartbeat. The broker bounds both
(`group.consumer.min.session.timeout.ms`, 45 s by default, and
`group.consumer.min.heartbeat.interval.ms`, 5 s): a value outside them stops the worker.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from streams.runtime.config import RuntimeConfig
from streams.runtime.kafka_admin import admin_client

log = logging.getLogger(__name__)


class GroupSettingsRefused(ValueError):
    """The broker refused the group's session settings: the worker refuses to start."""

# Every step of a handover (revoke, then assign) waits for a heartbeat: 1 s at most.
MAX_HEARTBEAT_MS = 1000


def group_settings(settings: RuntimeConfig) -> dict[str, str]:
    session_ms = settings.session_timeout_s * 1000
    return {"consumer.session.timeout.ms": str(session_ms),
            "consumer.heartbeat.interval.ms": str(min(MAX_HEARTBEAT_MS, session_ms // 3))}


def apply_group_settings(settings: RuntimeConfig, timeout_s: float = 30.0) -> None:
    entries = [ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
               for name, value in group_settings(settings).items()]
    resource = ConfigResource(ResourceType.GROUP, settings.app_id, incremental_configs=entries)
    # Held until the answer is in: a collected client cancels its requests.
    admin = admin_client(settings.client)
    futures = admin.incremental_alter_configs([resource], request_timeout=timeout_s)
    try:
        for future in futures.values():
            future.result()
    except KafkaException as exc:
        raise GroupSettingsRefused(
            f"the broker refused group {settings.app_id}'s settings "
            f"{group_settings(settings)} (TOPUP_SESSION_TIMEOUT_S with "
            f"TOPUP_GROUP_PROTOCOL=consumer): {exc.args[0]}; lower the broker's "
            "group.consumer.min.session.timeout.ms (45 s by default) and "
            "group.consumer.min.heartbeat.interval.ms (5 s) to at most the session and "
            f"{MAX_HEARTBEAT_MS} ms, raise TOPUP_SESSION_TIMEOUT_S, or set "
            "TOPUP_GROUP_PROTOCOL=classic") from exc
    # The broker answers before the config reaches its coordinator (through the metadata
    # log, ~0.5 s): a member joining meanwhile kept the 45 s default session (measured in
    # the zombie test: fenced after 42 s instead of 6 s). Join only once it is in effect.
    deadline = time.monotonic() + timeout_s
    while (now := effective(admin, settings.app_id)) != group_settings(settings):
        if time.monotonic() > deadline:
            log.warning("group %s settings not in effect after %.0fs: %s", settings.app_id,
                        timeout_s, now)
            return
        time.sleep(0.1)


def effective(admin: AdminClient, group: str) -> dict[str, str]:
    futures = admin.describe_configs([ConfigResource(ResourceType.GROUP, group)])
    configs = next(iter(futures.values())).result()
    return {name: configs[name].value for name in ("consumer.session.timeout.ms",
                                                  "consumer.heartbeat.interval.ms")}
