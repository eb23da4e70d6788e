"""The Confluent wire format in the catalog: framing, resolution, errors, waiting.

The registry here is an in-memory stand-in for RegistryClient's two calls, so these
tests pin the codec's decisions; tests/integration/test_schema_registry.py runs the
same paths against a real registry.
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from streams.codecs import DecodeError, SchemaCatalog
from streams.confluent import CACHE_SIZE, ConfluentFraming, strip_logical_types
from streams.registry import RegistryRefused, RegistryUnavailable


class InMemoryRegistry:
    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, int] = {}
        self.down_for = 0  # calls that fail as unreachable before answering
        self.calls = 0

    def add(self, schema: dict[str, Any]) -> int:
        schema_id = len(self.schemas) + 1
        self.schemas[schema_id] = json.dumps(schema)
        return schema_id

    def schema_by_id(self, schema_id: int) -> str:
        self.calls += 1
        if self.down_for:
            self.down_for -= 1
            raise RegistryUnavailable("connection refused")
        if schema_id not in self.schemas:
            raise RegistryRefused(404, 40403, "Schema not found")
        return self.schemas[schema_id]

    def register(self, subject: str, schema: str) -> int:
        self.subjects[subject] = self.add(json.loads(schema))
        return self.subjects[subject]


def order(**overrides: Any) -> dict[str, Any]:
    value = {
        "event_id": "e-1", "type": "CREATED", "order_id": "o-1", "occurred_at": 1_700_000_000_000,
        "account_id": "a-1", "user_id": "u-1", "amount_minor": 500, "currency": "EUR",
        "provider": "hmac", "merchant_id": "m-1",
    }
    value.update(overrides)
    return value


def confluent_bytes(schema_id: int, schema: dict[str, Any], value: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    buf.write(b"\x00" + schema_id.to_bytes(4, "big"))
    schemaless_writer(buf, parse_schema(strip_logical_types(schema), named_schemas={}), value)
    return buf.getvalue()


@pytest.fixture
def setup() -> tuple[SchemaCatalog, InMemoryRegistry, list[bool]]:
    catalog, registry, waits = SchemaCatalog(), InMemoryRegistry(), []
    catalog.attach_registry(
        ConfluentFraming(registry, waits.append, sleep=lambda _s: None)  # type: ignore[arg-type]
    )
    return catalog, registry, waits


def test_reads_confluent_and_single_object_side_by_side(setup) -> None:
    catalog, registry, _ = setup
    schema = catalog.schema("OrderEvent")
    schema_id = registry.add(schema)
    framed = confluent_bytes(schema_id, schema, order())
    assert catalog.decode("OrderEvent", framed)["order_id"] == "o-1"
    assert catalog.decode("OrderEvent", catalog.encode("OrderEvent", order()))["order_id"] == "o-1"


def test_a_writer_with_an_added_field_resolves_into_the_reader(setup) -> None:
    catalog, registry, _ = setup
    v2 = catalog.schema("OrderEvent")
    v2["fields"].append({"name": "channel", "type": "string", "default": "web"})
    schema_id = registry.add(v2)
    decoded = catalog.decode("OrderEvent", confluent_bytes(schema_id, v2, order(channel="app")))
    assert decoded["amount_minor"] == 500 and "channel" not in decoded


def test_an_incompatible_writer_is_schema_invalid_naming_the_id(setup) -> None:
    catalog, registry, _ = setup
    bad = catalog.schema("OrderEvent")
    for field in bad["fields"]:
        if field["name"] == "amount_minor":
            field["type"] = "string"
    schema_id = registry.add(bad)
    with pytest.raises(DecodeError) as err:
        catalog.decode("OrderEvent", confluent_bytes(schema_id, bad, order(amount_minor="5")))
    assert err.value.reason == DecodeError.SCHEMA_INVALID
    assert f"id {schema_id}" in str(err.value)


def test_an_unknown_id_is_schema_invalid_and_asked_once(setup) -> None:
    catalog, registry, _ = setup
    data = b"\x00\x00\x00\x00\x63" + b"\x02"
    for _ in range(2):
        with pytest.raises(DecodeError) as err:
            catalog.decode("OrderEvent", data)
        assert err.value.reason == DecodeError.SCHEMA_INVALID and "99" in str(err.value)
    assert registry.calls == 1


def test_an_unreachable_registry_is_waited_out_before_the_batch(setup) -> None:
    catalog, registry, waits = setup
    schema = catalog.schema("OrderEvent")
    schema_id = registry.add(schema)
    registry.down_for = 3
    data = confluent_bytes(schema_id, schema, order())
    catalog.prefetch([data, None, b"\xc3\x01"])
    assert waits == [True, True, True, False]
    calls = registry.calls
    assert catalog.decode("OrderEvent", data)["order_id"] == "o-1"
    assert registry.calls == calls  # served from the cache, no registry call in the batch


def test_truncated_confluent_bytes_are_undecodable(setup) -> None:
    catalog, registry, _ = setup
    schema = catalog.schema("OrderEvent")
    data = confluent_bytes(registry.add(schema), schema, order())
    for cut in (b"\x00\x00", data[:-3]):
        with pytest.raises(DecodeError) as err:
            catalog.decode("OrderEvent", cut)
        assert err.value.reason == DecodeError.UNDECODABLE


def test_outputs_registered_by_topic_are_written_confluent(setup) -> None:
    catalog, registry, _ = setup
    assert catalog.confluent is not None
    schema_id = catalog.confluent.register_output("topup.orders", catalog.schema("OrderEvent"))
    assert registry.subjects == {"topup.orders-value": schema_id}
    data = catalog.encode("OrderEvent", order(), topic="topup.orders")
    assert data[:5] == b"\x00" + schema_id.to_bytes(4, "big")
    assert catalog.decode("OrderEvent", data) == catalog.decode(
        "OrderEvent", catalog.encode("OrderEvent", order()))
    # A topic not registered keeps single-object encoding.
    assert catalog.encode("OrderEvent", order(), topic="topup.other")[:2] == b"\xc3\x01"


def test_without_a_registry_confluent_bytes_stay_undecodable() -> None:
    catalog = SchemaCatalog()
    with pytest.raises(DecodeError) as err:
        catalog.decode("OrderEvent", b"\x00\x00\x00\x00\x01" + b"\x00" * 20)
    assert err.value.reason == DecodeError.UNDECODABLE


def test_the_writer_cache_is_bounded(setup) -> None:
    catalog, registry, _ = setup
    schema = catalog.schema("OrderEvent")
    for _ in range(CACHE_SIZE + 10):
        registry.add(copy.deepcopy(schema))
    catalog.prefetch(confluent_bytes(i, schema, order()) for i in range(1, CACHE_SIZE + 11))
    assert catalog.confluent is not None
    assert len(catalog.confluent._writers) == CACHE_SIZE


def test_a_prefetch_gives_up_after_its_bounded_wait(setup) -> None:
    catalog, registry, waits = setup
    schema = catalog.schema("OrderEvent")
    data = confluent_bytes(registry.add(schema), schema, order())
    registry.down_for = 10**9
    assert catalog.confluent is not None
    with pytest.raises(RegistryUnavailable):
        catalog.confluent.prefetch([data], max_wait_s=0.0)
    assert waits and all(waits)
    registry.down_for = 0
    catalog.prefetch([data])  # the worker's replay of the batch, the registry back
    assert waits[-1] is False  # the outage is over: the gauge goes back up
