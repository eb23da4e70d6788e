"""The faust App and its settings, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

import faust
from faust.types import TableT, TopicT

from streams import eos, topics
from streams.codecs import SchemaCatalog, default_catalog, register_faust_codecs
from streams.config import Settings
from streams.metrics import Metrics


@dataclass
class Pipeline:
    """What every agent needs: the app, its raw-bytes topics, the codec and the metrics."""

    app: faust.App
    settings: Settings
    catalog: SchemaCatalog
    topics: dict[str, TopicT] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    balances: TableT | None = None


def create_app(settings: Settings, catalog: SchemaCatalog | None = None) -> Pipeline:
    eos.install()
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        store="rocksdb://",
        processing_guarantee="exactly_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        datadir=str(settings.state_dir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_enabled=True,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        # Short transactions keep end-to-end latency low for read_committed consumers.
        broker_commit_interval=0.2,
        table_standby_replicas=0,
        # A crashed worker's partitions move on after this, not after faust's 60 s default.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1, settings.session_timeout_s // 3),
    )
    pipeline = Pipeline(app=app, settings=settings, catalog=catalog or default_catalog())
    # Agents decode raw bytes themselves (bad records become dead letters); the codecs
    # make `avro-<Record>` available to any faust topic or table that wants them.
    register_faust_codecs(pipeline.catalog)
    for spec in topics.TOPICS:
        # Values are Avro single-object bytes; agents decode themselves so that a bad
        # record becomes a dead letter instead of a framework-level decode error.
        pipeline.topics[spec.name] = app.topic(
            spec.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

    from streams.agents import register_all

    register_all(pipeline)
    return pipeline
