"""Registry-based Avro producers and consumers against a running worker.

The order service and settlement importer here are written as other teams write them:
a plain confluent-kafka Producer with confluent-kafka's AvroSerializer, registering
their schemas in a real registry (Apicurio Registry, deploy/apicurio, through its
Confluent-compatible API), in the Confluent wire format.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams import topics
from streams.codecs import default_catalog
from streams.domain.common.ids import entry_id
from streams.recon_report_cli import report
from tests.builders import NOW_MS, batch_closed, order_event, payment_event, settlement_line
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, free_port, http, read_until, settings_from
from tests.registry_harness import (
    CCOMPAT_PATH,
    PASSWORD,
    USER,
    TcpForwarder,
    registry_catalog,
    retrying,
    sr_config,
    start_registry,
    start_standin_registry,
)

HOUR = 3_600_000


@pytest.fixture(scope="session")
def registry_url() -> str:
    # Like the broker: a test that needs the registry and cannot start one fails.
    return start_registry().url


@pytest.fixture
def registry_env(kafka_env: dict[str, str], registry_url: str) -> dict[str, str]:
    return {
        **kafka_env,
        "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS),
        "TOPUP_SCHEMA_REGISTRY_URL": registry_url,
    }


class RegistryProducer:
    """An order service / settlement importer: Producer defaults plus AvroSerializer, and
    the murmur2 partitioner CONTRACT.md asks producers to use (the Java default)."""

    def __init__(self, bootstrap: str, registry_url: str, **serializer_conf: Any) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap,
                                  "partitioner": "murmur2_random"})
        self.registry = SchemaRegistryClient(sr_config(registry_url))
        self.serializer_conf = serializer_conf
        self.serializers: dict[str, AvroSerializer] = {}

    def produce(self, topic: str, key: str, schema: dict[str, Any], value: dict) -> bytes:
        text = json.dumps(schema)
        if text not in self.serializers:
            self.serializers[text] = AvroSerializer(self.registry, text, conf=self.serializer_conf)
        data = self.serializers[text](value, SerializationContext(topic, MessageField.VALUE))
        self.producer.produce(topic, key=key, value=data)
        return data

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def _schema_id(data: bytes) -> int:
    assert data[:1] == b"\x00", data[:8]
    return int.from_bytes(data[1:5], "big")


def test_registry_producers_are_credited_once_and_reconciled(registry_env, registry_url, workers):
    env = {**registry_env, "TOPUP_OUTPUT_FORMAT": "confluent"}
    settings = settings_from(env)
    worker = workers.start("registry", **env)
    catalog = default_catalog()
    service = RegistryProducer(settings.bootstrap_servers, registry_url)
    flow = Flow(settings)  # the provider's callbacks arrive through the webhook topic as usual
    orders = ["o-sr-1", "o-sr-2", "o-sr-3"]
    for index, order_id in enumerate(orders):
        at = NOW_MS + index * 1_000
        service.produce(topics.ORDERS, order_id, catalog.schema("OrderEvent"),
                        order_event(order_id, at=at))
        # The provider retries each callback once: still one credit per order.
        for _ in range(2):
            flow.callback(payment_event(order_id, at=at + 500))
    service.flush()
    flow.flush()
    # Settlements come the next day, once the orders are paid and credited.
    credited = read_until(settings, [topics.CREDITS],
                          lambda rs: sum(r.topic == topics.CREDITS for r in rs) >= len(orders),
                          workers=[worker])
    assert len(credited) == len(orders)

    importer = RegistryProducer(settings.bootstrap_servers, registry_url)
    settlement = catalog.schema("SettlementRecord")
    for order_id in orders:
        importer.produce(topics.SETTLEMENTS, "settlement-file", settlement,
                         settlement_line(f"r-{order_id}", "b-sr", order_id, 1000, NOW_MS + HOUR))
    # Closing three hours on moves event time past the grace periods (as in
    # test_reconciliation); its watermark covers every payment above.
    importer.produce(topics.SETTLEMENTS, "settlement-file", settlement,
                     batch_closed("b-sr", lines=3, total=3000, at=NOW_MS + 3 * HOUR,
                                  covers_until=NOW_MS + HOUR))
    importer.flush()

    reader = registry_catalog(registry_url)

    def matched(records) -> set[str]:
        return {reader.decode("AuditRecord", r.value)["subject"] for r in records
                if r.topic == topics.AUDIT
                and reader.decode("AuditRecord", r.value)["action"] == "MATCHED"}

    records = read_until(
        settings, [topics.CREDITS, topics.AUDIT, topics.RECON_BREAKS, topics.DLQ],
        lambda rs: matched(rs) >= set(orders)
        and sum(r.topic == topics.CREDITS for r in rs) >= len(orders),
        workers=[worker],
    )
    assert matched(records) >= set(orders)
    assert [r for r in records if r.topic in (topics.DLQ, topics.RECON_BREAKS)] == []
    # The recon report reads the Confluent-framed outputs through the registry too.
    assert f"{len(orders)} matched orders" in report(settings, since_ms=None, timeout_s=30)

    # Another team's consumer reads topup.credits with AvroDeserializer: Confluent-framed,
    # under the topic's subject.
    credit_records = [r for r in records if r.topic == topics.CREDITS]
    deserializer = AvroDeserializer(SchemaRegistryClient(sr_config(registry_url)))
    credits = [deserializer(r.value, SerializationContext(topics.CREDITS, MessageField.VALUE))
               for r in credit_records]
    assert Counter(c["order_id"] for c in credits) == dict.fromkeys(orders, 1)
    for credit in credits:
        assert credit["entry_id"] == entry_id(credit["order_id"], "CREDIT",
                                              f"txn-{credit['order_id']}", None)
        assert (credit["op"], credit["amount_minor"]) == ("CREDIT", 1000)
    latest = service.registry.get_latest_version(f"{topics.CREDITS}-value")
    assert {_schema_id(r.value) for r in credit_records} == {latest.schema_id}


def test_a_v2_writer_is_read_and_an_incompatible_writer_is_dead_lettered(
    registry_env, registry_url, workers
):
    settings = settings_from(registry_env)
    worker = workers.start("registry-v2", **registry_env)
    catalog = default_catalog()
    v2 = catalog.schema("OrderEvent")
    v2["fields"].append({"name": "sales_channel", "type": "string", "default": "web"})
    service = RegistryProducer(settings.bootstrap_servers, registry_url)
    service.produce(topics.ORDERS, "o-v2", v2, {**order_event("o-v2"), "sales_channel": "app"})

    # A team whose producer registers under its own subject, with amount_minor as a string:
    # the registry accepts it there, but it cannot be read as the project's OrderEvent.
    bad = catalog.schema("OrderEvent")
    for field in bad["fields"]:
        if field["name"] == "amount_minor":
            field["type"] = "string"
    legacy = RegistryProducer(settings.bootstrap_servers, registry_url,
                              **{"subject.name.strategy": lambda _ctx, _name: "legacy-orders"})
    bad_bytes = legacy.produce(topics.ORDERS, "o-bad",
                               bad, {**order_event("o-bad"), "amount_minor": "1000"})
    service.flush()
    legacy.flush()

    records = read_until(
        settings, [topics.ORDER_STATUS, topics.DLQ],
        lambda rs: any(s["order_id"] == "o-v2" for s in decode_all(rs, topics.ORDER_STATUS))
        and any(r.topic == topics.DLQ for r in rs),
        workers=[worker],
    )
    [status] = [s for s in decode_all(records, topics.ORDER_STATUS) if s["order_id"] == "o-v2"]
    assert status["status"] == "CREATED"
    [dead] = decode_all(records, topics.DLQ)
    assert (dead["source_topic"], dead["error_kind"]) == (topics.ORDERS, "SCHEMA_INVALID")
    assert dead["value"] == bad_bytes
    assert f"id {_schema_id(bad_bytes)}" in dead["error"]
    assert not any(s["order_id"] == "o-bad" for s in decode_all(records, topics.ORDER_STATUS))


def test_an_unreachable_registry_is_waited_out_not_dead_lettered(registry_env, workers, tmp_path):
    port = free_port()
    env = {**registry_env, "TOPUP_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{port}{CCOMPAT_PATH}"}
    settings = settings_from(env)
    worker = workers.start("registry-down", **env)
    # Confluent-framed bytes naming schema id 1, which the fresh registry below assigns
    # to OrderEvent: until it is reachable, the worker cannot know what they hold.
    catalog = default_catalog()
    framed = b"\x00" + (1).to_bytes(4, "big") + catalog.encode("OrderEvent",
                                                              order_event("o-wait"))[10:]
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    producer.produce(topics.ORDERS, key="o-wait", value=framed)
    assert producer.flush(30) == 0

    metrics_url = f"http://127.0.0.1:{worker.web_port}/metrics"
    deadline = time.monotonic() + 90
    while "topup_schema_registry_unavailable_total" not in _metrics(metrics_url):
        assert time.monotonic() < deadline, worker.log()
        assert worker.process.poll() is None, worker.log()
        time.sleep(0.5)
    assert _gauge(metrics_url, "topup_schema_registry_up") == 0
    assert "schema registry unavailable" in worker.log()

    # The registry becomes reachable holding the order service's schema as id 1: it is
    # started on another port, given the schema, then forwarded to from the worker's port
    # (the worker must not see it empty, which would be a real "no such id").
    registry_port = free_port()
    registry = start_registry(registry_port, tmp_path / "late-registry")
    forwarder = None
    try:
        client = SchemaRegistryClient(sr_config(registry.url))
        schema = Schema(json.dumps(catalog.schema("OrderEvent")), "AVRO")
        assert retrying(lambda: client.register_schema(f"{topics.ORDERS}-value", schema)) == 1
        forwarder = TcpForwarder(port, registry_port)
        records = read_until(
            settings, [topics.ORDER_STATUS, topics.DLQ],
            lambda rs: any(s["order_id"] == "o-wait" for s in decode_all(rs, topics.ORDER_STATUS)),
            workers=[worker],
        )
    finally:
        if forwarder is not None:
            forwarder.close()
        registry.stop()
    assert [r for r in records if r.topic == topics.DLQ] == []
    assert _gauge(metrics_url, "topup_schema_registry_up") == 1


def test_a_registry_that_rejects_the_project_schemas_stops_the_start(
    registry_env, workers, tmp_path
):
    # Its own registry: the subject below must not exist in the session one.
    registry = start_registry(free_port(), tmp_path / "strict-registry")
    try:
        client = SchemaRegistryClient(sr_config(registry.url))
        # Someone already owns topup.credits-value with a schema the project's cannot follow.
        theirs = default_catalog().schema("LedgerEntry")
        for field in theirs["fields"]:
            if field["name"] == "amount_minor":
                field["type"] = "string"
        serialize_theirs = AvroSerializer(client, json.dumps(theirs))
        retrying(lambda: serialize_theirs(
            {**_ledger_entry(), "amount_minor": "1"},
            SerializationContext(topics.CREDITS, MessageField.VALUE),
        ))
        env = {**registry_env, "TOPUP_SCHEMA_REGISTRY_URL": registry.url,
               "TOPUP_OUTPUT_FORMAT": "confluent"}
        worker = workers.start("registry-refused", **env)
        try:
            code = worker.process.wait(timeout=60)
        except Exception:
            pytest.fail(f"the worker did not stop on a refused schema:\n{worker.log()}")
    finally:
        registry.stop()
    assert code == 2
    assert "schema registration refused" in worker.log()
    assert f"{topics.CREDITS}-value" in worker.log()


def test_registry_credentials_from_a_file_are_sent_and_never_logged(
    kafka_env, workers, tmp_path
):
    # On the stand-in registry (deploy/registry): Apicurio authenticates with OIDC, not
    # HTTP basic auth, so only the stand-in can check that the worker's credentials are sent.
    registry = start_standin_registry(free_port(), tmp_path / "auth-registry")
    try:
        password_file = tmp_path / "registry-password"
        password_file.write_text(PASSWORD)
        # With confluent output the worker registers its schemas at start: without the
        # credentials the registry answers 401 and the worker stops.
        worker = workers.start("registry-auth", **kafka_env,
                               TOPUP_SCHEMA_REGISTRY_URL=registry.url,
                               TOPUP_SCHEMA_REGISTRY_USER=USER,
                               TOPUP_SCHEMA_REGISTRY_PASSWORD_FILE=str(password_file),
                               TOPUP_OUTPUT_FORMAT="confluent")
        client = SchemaRegistryClient(sr_config(registry.url, auth=True))
        deadline = time.monotonic() + 60
        while f"{topics.CREDITS}-value" not in client.get_subjects():
            assert time.monotonic() < deadline, worker.log()
            assert worker.process.poll() is None, worker.log()
            time.sleep(0.5)
        assert worker.process.poll() is None, worker.log()
        assert PASSWORD not in worker.log()
    finally:
        registry.stop()


def _ledger_entry() -> dict[str, Any]:
    schema = default_catalog().schema("LedgerEntry")
    values: dict[str, Any] = {}
    for field in schema["fields"]:
        kind = field["type"]
        kind = kind["type"] if isinstance(kind, dict) else kind
        if "default" in field:
            values[field["name"]] = field["default"]
        elif kind == "enum" or (isinstance(field["type"], dict) and "symbols" in field["type"]):
            values[field["name"]] = field["type"]["symbols"][0]
        elif kind in ("int", "long"):
            values[field["name"]] = 0
        elif kind == "boolean":
            values[field["name"]] = False
        else:
            values[field["name"]] = "x"
    return values


def _gauge(url: str, name: str) -> float | None:
    """An unlabelled gauge's value as /metrics renders it, or None when it is absent."""
    for line in _metrics(url).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def _metrics(url: str) -> str:
    try:
        status, body = http("GET", url)
    except OSError:
        return ""
    return body.decode() if status == 200 else ""
