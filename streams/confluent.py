"""The Confluent wire format beside single-object encoding (see CONTRACT.md, "Conventions").

Wire format: a zero byte, the writer schema's registry id as 4 bytes big-endian, then the
Avro binary body. Writer schemas are fetched from the registry by id and cached; the
body is resolved into the project's reader schema with Avro's resolution rules.

A registry that cannot be reached is waited out (the record is not bad): the worker
calls `prefetch` with a batch's values before the batch's transaction begins, so the
wait never runs inside a transaction.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from fastavro import parse_schema

from streams.registry import RegistryClient, RegistryRefused, RegistryUnavailable

log = logging.getLogger(__name__)

CONFLUENT_MAGIC = b"\x00"
HEADER_LEN = 5
UNAVAILABLE_METRIC = "topup_schema_registry_unavailable_total"
UP_METRIC = "topup_schema_registry_up"
# Writer schemas are few (one per producer version); the bound keeps a stream of bogus
# ids from growing the cache without limit.
CACHE_SIZE = 1024
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 10.0
# How long one prefetch waits before handing back to the worker (which replays the batch
# and polls again, well inside max.poll.interval.ms).
PREFETCH_MAX_WAIT_S = 30.0


class UnusableWriterSchema(Exception):
    """The id is unknown to the registry, or its schema is not Avro this reader can use."""


def strip_logical_types(schema: Any) -> Any:
    # The same convention as the catalog: times stay plain int epoch millis.
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(v) for v in schema]
    return schema


def schema_id_of(data: bytes) -> int | None:
    """The registry id of Confluent-framed bytes, or None for any other framing."""
    if len(data) < HEADER_LEN or data[:1] != CONFLUENT_MAGIC:
        return None
    return int.from_bytes(data[1:HEADER_LEN], "big")


class ConfluentFraming:
    """Writer schemas by registry id (bounded cache) and the ids output topics write with."""

    def __init__(
        self,
        client: RegistryClient,
        on_unavailable: Callable[[bool], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self._on_unavailable = on_unavailable or (lambda _down: None)
        self._sleep = sleep
        # id -> parsed writer schema, or the reason it cannot be used (also cached: the
        # registry's answer for an id never changes).
        self._writers: OrderedDict[int, dict[str, Any] | str] = OrderedDict()
        self._output_headers: dict[str, bytes] = {}
        self._down = False

    def prefetch(
        self, values: Iterable[bytes | None], max_wait_s: float = PREFETCH_MAX_WAIT_S
    ) -> None:
        """Fetches every writer schema `values` need that is not cached, waiting out an
        unreachable registry for up to `max_wait_s` (then RegistryUnavailable: the
        caller retries later). Call it outside any transaction."""
        deadline = time.monotonic() + max_wait_s
        for value in values:
            schema_id = schema_id_of(value) if isinstance(value, bytes) else None
            if schema_id is not None and schema_id not in self._writers:
                self._fetch(schema_id, deadline)

    def writer_schema(self, schema_id: int) -> dict[str, Any]:
        if schema_id not in self._writers:
            self._fetch(schema_id)  # decode outside the worker (CLI tools): wait here
        self._writers.move_to_end(schema_id)
        writer = self._writers[schema_id]
        if isinstance(writer, str):
            raise UnusableWriterSchema(writer)
        return writer

    def output_header(self, topic: str) -> bytes | None:
        return self._output_headers.get(topic)

    def register_output(self, topic: str, schema: dict[str, Any]) -> int:
        """Registers `schema` under `<topic>-value` (TopicNameStrategy) and writes `topic`
        with its id from now on. RegistryRefused when the compatibility check rejects it."""
        schema_id = self._waiting(lambda: self.client.register(f"{topic}-value",
                                                                json.dumps(schema)))
        self._output_headers[topic] = CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")
        self._remember(schema_id, _parse(json.dumps(schema)))
        return schema_id

    def _fetch(self, schema_id: int, deadline: float | None = None) -> None:
        try:
            text = self._waiting(lambda: self.client.schema_by_id(schema_id), deadline)
        except RegistryRefused as exc:
            self._remember(schema_id, f"the registry does not serve schema id {schema_id}: {exc}")
            return
        try:
            self._remember(schema_id, _parse(text))
        except Exception as exc:  # fastavro raises many types for bad schemas
            self._remember(schema_id, f"schema id {schema_id} is not usable Avro: {exc}")

    def _remember(self, schema_id: int, writer: dict[str, Any] | str) -> None:
        self._writers[schema_id] = writer
        self._writers.move_to_end(schema_id)
        while len(self._writers) > CACHE_SIZE:
            self._writers.popitem(last=False)

    def _waiting(self, call: Callable[[], Any], deadline: float | None = None) -> Any:
        delay = BACKOFF_START_S
        while True:
            try:
                result = call()
            except RegistryUnavailable as exc:
                if not self._down:
                    log.warning("schema registry unavailable, waiting: %s", exc)
                # Kept across calls: a wait handed back to the worker is still one outage.
                self._down = True
                self._on_unavailable(True)
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise
                self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if self._down:
                log.warning("schema registry reachable again")
                self._down = False
                self._on_unavailable(False)
            return result


def _parse(text: str) -> dict[str, Any]:
    source = json.loads(text)
    if not isinstance(source, dict) or source.get("type") != "record":
        raise ValueError("the writer schema is not an Avro record")
    return parse_schema(strip_logical_types(source), named_schemas={})


def attach_registry(catalog: Any, settings: Any, metrics: Any, topics: Iterable[Any]) -> None:
    """Wires `settings`' registry into `catalog` (no-op without a URL). With
    OUTPUT_FORMAT=confluent it registers the latest schema of every topic in `topics`
    (TopicSpecs) under `<topic>-value`; RegistryRefused names the topic the registry's
    compatibility check rejected."""
    if settings.schema_registry_url is None:
        return
    metrics.describe(UNAVAILABLE_METRIC, "Waits for a schema registry that could not be reached.")
    metrics.describe(UP_METRIC, "1 when the schema registry last answered, 0 while waiting.")
    metrics.set(UP_METRIC, 1)

    def on_unavailable(down: bool) -> None:
        metrics.set(UP_METRIC, 0 if down else 1)
        if down:
            metrics.inc(UNAVAILABLE_METRIC)

    client = RegistryClient(settings.schema_registry_url, settings.schema_registry_user,
                            settings.schema_registry_password)
    framing = ConfluentFraming(client, on_unavailable)
    if settings.output_format == "confluent":
        for spec in topics:
            if spec.record is None:
                continue
            try:
                framing.register_output(spec.name, catalog.schema(spec.record))
            except RegistryRefused as exc:
                raise RegistryRefused(
                    exc.status, exc.error_code,
                    f"the registry refused {spec.record} for subject {spec.name}-value "
                    f"(HTTP {exc.status}; incompatible with the subject's compatibility rule?): "
                    f"{exc}",
                ) from None
    catalog.attach_registry(framing)


def reading_catalog(settings: Any) -> Any:
    """A catalog for tools that read topics (reports): the shared default without a
    registry, else its own one that also reads the Confluent wire format."""
    from streams.codecs import SchemaCatalog, default_catalog  # codecs imports this module

    if settings.schema_registry_url is None:
        return default_catalog()
    catalog = SchemaCatalog()
    catalog.attach_registry(ConfluentFraming(RegistryClient(
        settings.schema_registry_url, settings.schema_registry_user,
        settings.schema_registry_password)))
    return catalog
