"""What the runtime is told by the application that runs it: the application builds this
from its own settings at the edge (streams/worker_config.py), so the runtime reads no
environment and knows no application module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.runtime.topic_spec import TopicDirectory, TopicSpec


@dataclass(frozen=True)
class RuntimeConfig:
    app_id: str
    # librdkafka's settings every client starts from (brokers, TLS, SASL): secrets, so
    # never shown.
    client: Mapping[str, Any] = field(repr=False)
    # The application's topics: the internal ones a stage reads are created at start, and
    # every one's max.message.bytes bounds what a handler may send to it.
    topics: tuple[TopicSpec[Any], ...]
    # Where the runtime dead-letters what a stage cannot read or handle.
    dead_letter_topic: str
    # Where the runtime raises its own alerts (a producer's mispartitioned input).
    alert_topic: str
    partitions: int = 4
    replication_factor: int = 1
    topic_retention_days: int = 7
    state_dir: Path = Path(".state")
    batch_max_records: int = 2000
    # Latency target of one batch's handling and commit (batch_policy.py); 0: none.
    batch_target_ms: int = 0
    # How long the broker holds a fetch that finds nothing readable (librdkafka's
    # fetch.wait.max.ms): a record committed meanwhile can wait up to this long per hop.
    fetch_wait_max_ms: int = 100
    idle_advance_s: int = 5
    session_timeout_s: int = 10
    stall_threshold_s: int = 60
    state_cleanup_delay_s: int = 600
    transaction_timeout_s: int = 10
    txn_call_timeout_s: int = 30
    # Warm copies of the store partitions this worker does not own (standby.py): 0 or 1.
    standby_replicas: int = 0
    # "consumer" (KIP-848, incremental) or "classic" (eager range): see topology.md.
    group_protocol: str = "consumer"

    def directory(self) -> TopicDirectory:
        return TopicDirectory({spec.name: spec.record for spec in self.topics},
                              self.dead_letter_topic)

    def topic(self, name: str) -> TopicSpec[Any] | None:
        return next((spec for spec in self.topics if spec.name == name), None)
