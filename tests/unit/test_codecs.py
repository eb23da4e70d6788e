"""Avro schemas (schemas/*.avsc) and the single-object codec (streams/codecs.py)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codecs import (
    MAGIC,
    DecodeError,
    EncodeError,
    SchemaCatalog,
    default_catalog,
)

# Module level, not a fixture: hypothesis refuses function-scoped fixtures.
CATALOG = SchemaCatalog()
RECORDS = CATALOG.records()
REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

# --- independent reference implementation of the Avro spec ---------------------------

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_CRC64_EMPTY = 0xC15D213AA4D7A795
_CRC64_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_CRC64_EMPTY & -(_fp & 1))
    _CRC64_TABLE.append(_fp)


def crc64_avro(data: bytes) -> int:
    """The spec's fingerprint64 (CRC-64-AVRO / Rabin), as an unsigned 64-bit int."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def canonical_form(schema: Any, namespace: str = "") -> str:
    """Parsing Canonical Form per the spec's transformations, for the types we use."""

    def fullname(name: str, ns: str) -> str:
        return name if "." in name or not ns else f"{ns}.{name}"

    if isinstance(schema, str):
        return json.dumps(schema if schema in _PRIMITIVES else fullname(schema, namespace))
    if isinstance(schema, list):
        return "[" + ",".join(canonical_form(s, namespace) for s in schema) + "]"
    kind = schema["type"]
    if kind in _PRIMITIVES:
        return json.dumps(kind)
    if kind == "array":
        return '{"type":"array","items":' + canonical_form(schema["items"], namespace) + "}"
    if kind == "map":
        return '{"type":"map","values":' + canonical_form(schema["values"], namespace) + "}"
    name = fullname(schema["name"], schema.get("namespace", namespace))
    inner_ns = name.rpartition(".")[0]
    if kind == "enum":
        symbols = ",".join(json.dumps(s) for s in schema["symbols"])
        return f'{{"name":{json.dumps(name)},"type":"enum","symbols":[{symbols}]}}'
    if kind == "fixed":
        return f'{{"name":{json.dumps(name)},"type":"fixed","size":{schema["size"]}}}'
    assert kind == "record", kind
    fields = ",".join(
        f'{{"name":{json.dumps(f["name"])},"type":{canonical_form(f["type"], inner_ns)}}}'
        for f in schema["fields"]
    )
    return f'{{"name":{json.dumps(name)},"type":"record","fields":[{fields}]}}'


# Published vectors from Apache Avro's share/test/data/schema-tests.txt (signed Java longs).
@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ('"null"', 7195948357588979594),
        ('"boolean"', -6970731678124411036),
        ('"int"', 8247732601305521295),
        (
            '{"type":"record","name":"foo","fields":[{"name":"f1","type":"boolean"}]}',
            7843277075252814651,
        ),
    ],
)
def test_reference_crc64_matches_avro_published_vectors(schema: str, expected: int) -> None:
    pcf = canonical_form(json.loads(schema))
    assert crc64_avro(pcf.encode()) == expected & 0xFFFF_FFFF_FFFF_FFFF


# --- samples built from the schema, so a new schema is covered automatically -----------

_NAMED_VALUES = {
    "currency": "CNY",
    "provider": "wechatpay",
    "expected_currency": "CNY",
    "actual_currency": "USD",
    "scope": "merchant:m-1",
    "score": 73,
}


def _value(schema: Any, field: str, named: dict[str, Any], nulls: bool) -> Any:
    if isinstance(schema, list):
        if nulls and "null" in schema:
            return None
        return _value(next(s for s in schema if s != "null"), field, named, nulls)
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        schema = named[schema.rpartition(".")[2]]
    if isinstance(schema, dict):
        if schema.get("logicalType") == "timestamp-millis":
            return 1_732_540_800_123
        kind = schema["type"]
        if kind == "enum":
            named[schema["name"]] = schema
            return schema["symbols"][-1]
        if kind == "map":
            return {"rule": "R12", "note": "naïve ünïcode ✓"}
        if kind == "array":
            return [_value(schema["items"], field, named, nulls) for _ in range(2)]
        schema = kind
    if field in _NAMED_VALUES:
        return _NAMED_VALUES[field]
    return {
        "string": f"{field}-7f3a",
        "long": 123_456_789_012,
        "int": 42,
        "boolean": True,
        "bytes": b"\x00\xff raw \xc3\x01",
        "double": 1.5,
        "float": 0.5,
    }[schema]


def sample(record: str, *, nulls: bool = False, catalog: SchemaCatalog = CATALOG) -> dict:
    named: dict[str, Any] = {}
    return {
        f["name"]: _value(f["type"], f["name"], named, nulls)
        for f in catalog.schema(record)["fields"]
    }


@pytest.mark.parametrize("record", RECORDS)
@pytest.mark.parametrize("nulls", [False, True], ids=["all-set", "nullables-null"])
def test_round_trip(record: str, nulls: bool) -> None:
    value = sample(record, nulls=nulls)
    assert CATALOG.decode(record, CATALOG.encode(record, value)) == value


@pytest.mark.parametrize("record", RECORDS)
def test_omitted_fields_get_schema_defaults(record: str) -> None:
    fields = CATALOG.schema(record)["fields"]
    value = {
        k: v
        for k, v in sample(record).items()
        if not any(f["name"] == k and "default" in f for f in fields)
    }
    decoded = CATALOG.decode(record, CATALOG.encode(record, value))
    assert decoded == {**{f["name"]: f["default"] for f in fields if "default" in f}, **value}


@pytest.mark.parametrize("record", RECORDS)
def test_decoded_python_types_are_plain(record: str) -> None:
    schema = CATALOG.schema(record)
    decoded = CATALOG.decode(record, CATALOG.encode(record, sample(record)))
    for field in schema["fields"]:
        t = field["type"]
        t = next(s for s in t if s != "null") if isinstance(t, list) else t
        if isinstance(t, dict) and t.get("logicalType") == "timestamp-millis":
            assert type(decoded[field["name"]]) is int  # epoch millis, never datetime
        if isinstance(t, dict) and t["type"] == "enum":
            assert type(decoded[field["name"]]) is str


# --- wire header ------------------------------------------------------------------------


@pytest.mark.parametrize("record", RECORDS)
def test_single_object_header_matches_independent_fingerprint(record: str) -> None:
    for version in CATALOG.versions(record):
        schema = CATALOG.schema(record, version)
        expected = crc64_avro(canonical_form(schema).encode()).to_bytes(8, "little")
        assert CATALOG.fingerprint(record, version) == expected
        # fastavro's canonical form must agree with the spec's, including full names.
        parsed = fastavro.parse_schema(schema, named_schemas={})
        assert fastavro.schema.to_parsing_canonical_form(parsed) == canonical_form(schema)
    data = CATALOG.encode(record, sample(record))
    assert data[:2] == b"\xc3\x01" == MAGIC
    assert data[2:10] == CATALOG.fingerprint(record)


def _strip_logical(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_logical(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical(v) for v in schema]
    return schema


@pytest.mark.parametrize("record", RECORDS)
def test_logical_types_do_not_change_the_fingerprint(record: str) -> None:
    schema = CATALOG.schema(record)
    assert "timestamp-millis" in json.dumps(schema)  # every record carries a time

    def fp(s: dict) -> str:
        parsed = fastavro.parse_schema(s, named_schemas={})
        pcf = fastavro.schema.to_parsing_canonical_form(parsed)
        return fastavro.schema.fingerprint(pcf, "CRC-64-AVRO")

    assert fp(schema) == fp(_strip_logical(schema)) == CATALOG.fingerprint(record).hex()


def test_known_vector_for_order_status() -> None:
    # Pinned so an accidental schema edit (which changes every consumer's fingerprint
    # index) shows up in review; recompute deliberately when bumping a version.
    value = {
        "order_id": "o1",
        "status": "CREATED",
        "previous_status": None,
        "reason": "r",
        "version": 1,
        "updated_at": 1_700_000_000_000,
    }
    data = CATALOG.encode("OrderStatus", value)
    expected_fp = crc64_avro(canonical_form(CATALOG.schema("OrderStatus")).encode())
    body = b"\x04o1" + b"\x00" + b"\x00" + b"\x02r" + b"\x02" + b"\x80\xa0\xab\xfe\xf9\x62"
    assert data == b"\xc3\x01" + expected_fp.to_bytes(8, "little") + body


# --- evolution --------------------------------------------------------------------------


def _thing(version: int, fields: list[dict], dir_: Path) -> None:
    schema = {"type": "record", "name": "Thing", "namespace": "topupguard", "fields": fields}
    (dir_ / f"Thing.v{version}.avsc").write_text(json.dumps(schema))


COLOR_V1 = {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}
AT = {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}


@pytest.fixture
def evolving(tmp_path: Path) -> SchemaCatalog:
    _thing(1, [{"name": "id", "type": "string"}, {"name": "color", "type": COLOR_V1}, AT], tmp_path)
    _thing(
        2,
        [
            {"name": "id", "type": "string"},
            {"name": "color", "type": {**COLOR_V1, "symbols": ["RED"]}},
            AT,
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "count", "type": "long", "default": 7},
        ],
        tmp_path,
    )
    return SchemaCatalog(tmp_path)


def test_old_writer_decodes_into_latest_reader_with_defaults(evolving: SchemaCatalog) -> None:
    assert evolving.versions("Thing") == [1, 2]
    old = evolving.encode("Thing", {"id": "t1", "color": "RED", "at": 5}, version=1)
    assert old[2:10] == evolving.fingerprint("Thing", 1) != evolving.fingerprint("Thing")
    assert evolving.decode("Thing", old) == {
        "id": "t1",
        "color": "RED",
        "at": 5,
        "note": None,
        "count": 7,
    }
    new = evolving.encode("Thing", {"id": "t2", "color": "RED", "at": 6, "note": "n"})
    assert new[2:10] == evolving.fingerprint("Thing", 2)
    assert evolving.decode("Thing", new)["note"] == "n"


def test_unresolvable_old_writer_is_schema_invalid(evolving: SchemaCatalog) -> None:
    old = evolving.encode("Thing", {"id": "t1", "color": "GREEN", "at": 5}, version=1)
    with pytest.raises(DecodeError) as err:
        evolving.decode("Thing", old)
    assert err.value.reason == "SCHEMA_INVALID"
    assert "Thing v1" in str(err.value)


def test_schema_dir_from_environment(
    monkeypatch: pytest.MonkeyPatch, evolving: SchemaCatalog
) -> None:
    monkeypatch.setenv("TOPUP_SCHEMA_DIR", str(evolving.schema_dir))
    assert SchemaCatalog().records() == ["Thing"]
    monkeypatch.delenv("TOPUP_SCHEMA_DIR")
    assert SchemaCatalog().schema_dir == REPO_SCHEMAS


def test_misnamed_schema_file_is_refused(tmp_path: Path) -> None:
    _thing(1, [{"name": "id", "type": "string"}], tmp_path)
    (tmp_path / "Thing.v1.avsc").rename(tmp_path / "Other.v1.avsc")
    with pytest.raises(ValueError, match="Other"):
        SchemaCatalog(tmp_path)


# --- bad bytes ----------------------------------------------------------------------------

_VALID = CATALOG.encode("OrderEvent", sample("OrderEvent"))
_HEADER = _VALID[:10]

BAD_BYTES = {
    "empty": (b"", "UNDECODABLE", "too short"),
    "one byte": (b"\xc3", "UNDECODABLE", "too short"),
    "header only, short": (_HEADER[:9], "UNDECODABLE", "too short"),
    "wrong magic": (b"\xc3\x02" + _VALID[2:], "UNDECODABLE", "c302"),
    "json": (b'{"event_id": "e1", "type": "CREATED"}', "UNDECODABLE", "single-object"),
    "unknown fingerprint": (MAGIC + bytes(8) + _VALID[10:], "UNDECODABLE", "fingerprint"),
    "header, no body": (_HEADER, "UNDECODABLE", "truncated"),
    "truncated body": (_VALID[:-3], "UNDECODABLE", "truncated"),
    "garbage body": (_HEADER + b"\xff" * 40, "UNDECODABLE", "corrupt"),
    "trailing bytes": (_VALID + b"\x00", "UNDECODABLE", "trailing"),
    "another record": (
        CATALOG.encode("Alert", sample("Alert")),
        "SCHEMA_INVALID",
        "hold record Alert",
    ),
}


@pytest.mark.parametrize(("data", "reason", "words"), BAD_BYTES.values(), ids=BAD_BYTES.keys())
def test_bad_bytes_raise_decode_error(data: bytes, reason: str, words: str) -> None:
    with pytest.raises(DecodeError) as err:
        CATALOG.decode("OrderEvent", data)
    assert err.value.reason == reason
    assert words in str(err.value)


def test_non_bytes_is_undecodable() -> None:
    with pytest.raises(DecodeError) as err:
        CATALOG.decode("OrderEvent", None)  # type: ignore[arg-type]
    assert err.value.reason == "UNDECODABLE"
    assert CATALOG.decode("OrderEvent", bytearray(_VALID)) == sample("OrderEvent")


def test_decode_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(DecodeError("UNDECODABLE", "too short")))
    assert (err.reason, str(err)) == ("UNDECODABLE", "too short")


def test_unknown_record_name_is_a_caller_bug() -> None:
    with pytest.raises(KeyError):
        CATALOG.decode("NoSuchRecord", _VALID)
    with pytest.raises(KeyError):
        CATALOG.encode("NoSuchRecord", {})


def _decode_or_error(record: str, data: bytes) -> None:
    try:
        assert isinstance(CATALOG.decode(record, data), dict)
    except DecodeError as err:
        assert err.reason in {"UNDECODABLE", "SCHEMA_INVALID"}
        assert str(err)


@settings(max_examples=300, deadline=None)
@given(record=st.sampled_from(RECORDS), data=st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_else(record: str, data: bytes) -> None:
    _decode_or_error(record, data)


@settings(max_examples=500, deadline=None)
@given(
    record=st.sampled_from(RECORDS),
    writer=st.sampled_from(RECORDS),
    body=st.binary(max_size=200),
)
def test_known_header_with_arbitrary_body(record: str, writer: str, body: bytes) -> None:
    _decode_or_error(record, MAGIC + CATALOG.fingerprint(writer) + body)


@settings(max_examples=500, deadline=None)
@given(record=st.sampled_from(RECORDS), data=st.data())
def test_mutated_valid_bytes(record: str, data: st.DataObject) -> None:
    valid = bytearray(CATALOG.encode(record, sample(record)))
    pos = data.draw(st.integers(10, len(valid) - 1))
    valid[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(10, len(valid)))
    _decode_or_error(record, bytes(valid[:cut]))


# --- bad values ----------------------------------------------------------------------------


def test_missing_required_field_is_encode_error() -> None:
    value = sample("OrderEvent")
    del value["order_id"]
    with pytest.raises(EncodeError, match="order_id"):
        CATALOG.encode("OrderEvent", value)


@pytest.mark.parametrize(
    ("record", "field", "bad"),
    [
        ("OrderEvent", "type", "SHIPPED"),  # not an enum symbol
        ("OrderEvent", "amount_minor", 12.5),  # money is never a float, not even truncated
        ("OrderEvent", "amount_minor", "100"),
        ("OrderEvent", "amount_minor", True),
        ("OrderEvent", "amount_minor", 2**63),
        ("OrderEvent", "occurred_at", "2024-11-25T12:00:00Z"),
        ("OrderEvent", "user_verified", "false"),  # would be truthy
        ("OrderEvent", "user_verified", None),  # has a default, but is not nullable
        ("OrderEvent", "order_id", None),
        ("OrderEvent", "app_id", 5),
        ("OrderEvent", "typo_field", "x"),  # strict: unknown keys are refused, not dropped
        ("DeadLetter", "partition", 2**31),  # beyond Avro int
        ("DeadLetter", "value", "not bytes"),
        ("RiskDecision", "reasons", "R1"),  # would become ["R", "1"]
        ("Alert", "details", {"count": 3}),
        ("OrderStatus", "previous_status", "PAID"),  # enum behind a named reference
        ("SettlementRecord", "kind", "FEE"),  # nullable enum
    ],
)
def test_value_that_does_not_fit_is_encode_error(record: str, field: str, bad: Any) -> None:
    with pytest.raises(EncodeError, match=field):
        CATALOG.encode(record, {**sample(record), field: bad})


def test_non_mapping_is_encode_error() -> None:
    with pytest.raises(EncodeError, match="mapping"):
        CATALOG.encode("OrderEvent", None)  # type: ignore[arg-type]


def test_default_catalog_is_a_cached_repo_catalog() -> None:
    assert default_catalog() is default_catalog()
    assert default_catalog().schema_dir == REPO_SCHEMAS


# --- the contract ----------------------------------------------------------------------------

# Hard-coded from CONTRACT.md. "?" = nullable with default null, "=x" = default x,
# "ts" = long/timestamp-millis, "enum:A|B" = enum symbols in order.
ORDER_STATES = (
    "CREATED|PENDING_PAYMENT|PAYMENT_CONFIRMED|CREDITED|FAILED|CANCELED|ON_HOLD|"
    "REFUND_IN_PROGRESS|REFUNDED"
)
CONTRACT: dict[str, list[tuple[str, str]]] = {
    "OrderEvent": [
        ("event_id", "string"),
        (
            "type",
            "enum:CREATED|PAYMENT_INITIATED|STEP_UP_COMPLETED|CANCELED|REFUND_REQUESTED"
            "|REVIEW_APPROVED|REVIEW_REJECTED",
        ),
        ("order_id", "string"),
        ("occurred_at", "ts"),
        ("account_id", "string"),
        ("user_id", "string"),
        ("amount_minor", "long"),
        ("currency", "string"),
        ("provider", "string"),
        ("merchant_id", "string"),
        ("app_id", "?string"),
        ("device_id", "?string"),
        ("ip", "?string"),
        ("payment_token", "?string"),
        ("account_created_at", "?ts"),
        ("user_verified", "boolean=False"),
        ("promo_id", "?string"),
        ("promo_bonus_minor", "long=0"),
        ("provider_intent_id", "?string"),
        ("refund_id", "?string"),
        ("actor", "?string"),
    ],
    "WebhookDelivery": [
        ("delivery_id", "string"),
        ("provider", "string"),
        ("received_at", "ts"),
        ("headers", "map"),
        ("body", "bytes"),
        ("source_ip", "?string"),
    ],
    "SettlementRecord": [
        ("record_id", "string"),
        ("type", "enum:LINE|BATCH_CLOSED"),
        ("batch_id", "string"),
        ("provider", "string"),
        ("merchant_id", "string"),
        ("kind", "?enum:PAYMENT|REFUND|CHARGEBACK"),
        ("order_id", "?string"),
        ("external_txn_id", "?string"),
        ("refund_id", "?string"),
        ("amount_minor", "long=0"),
        ("fee_minor", "long=0"),
        ("currency", "?string"),
        ("settled_at", "ts"),
        ("line_count", "?long"),
        ("total_amount_minor", "?long"),
        ("covers_until", "?ts"),
    ],
    "ControlCommand": [
        ("command_id", "string"),
        ("action", "enum:FREEZE_CREDITS|UNFREEZE_CREDITS|FREEZE_REFUNDS|UNFREEZE_REFUNDS"),
        ("scope", "string"),
        ("reason", "string"),
        ("issued_by", "string"),
        ("issued_at", "ts"),
    ],
    "LedgerEntry": [
        ("entry_id", "string"),
        ("op", "enum:CREDIT|DEBIT|REVERSAL"),
        ("account_id", "string"),
        ("order_id", "string"),
        ("amount_minor", "long"),
        ("bonus_minor", "long"),
        ("currency", "string"),
        ("provider", "string"),
        ("external_txn_id", "?string"),
        ("refund_id", "?string"),
        (
            "reason",
            "enum:PAYMENT_CONFIRMED|RECONCILIATION|REFUND|REVIEW_APPROVED|DUPLICATE_REVERSAL",
        ),
        ("caused_by", "string"),
        ("created_at", "ts"),
    ],
    "OrderStatus": [
        ("order_id", "string"),
        ("status", f"enum:{ORDER_STATES}"),
        ("previous_status", f"?enum:{ORDER_STATES}"),
        ("reason", "string"),
        ("version", "long"),
        ("updated_at", "ts"),
    ],
    "RiskDecision": [
        ("order_id", "string"),
        ("account_id", "string"),
        ("decision", "enum:ALLOW|STEP_UP|REVIEW|BLOCK"),
        ("score", "int"),
        ("reasons", "array<string>"),
        ("rules_version", "string"),
        ("decided_at", "ts"),
    ],
    "ReconBreak": [
        ("break_id", "string"),
        (
            "category",
            "enum:MISSING_CREDIT|MISSING_AT_PROVIDER|AMOUNT_MISMATCH"
            "|CURRENCY_MISMATCH|REFUND_STATUS_MISMATCH|DUPLICATE_SETTLEMENT",
        ),
        ("order_id", "string"),
        ("provider", "string"),
        ("expected_amount_minor", "?long"),
        ("actual_amount_minor", "?long"),
        ("expected_currency", "?string"),
        ("actual_currency", "?string"),
        ("action", "enum:AUTO_CORRECTED|FROZEN|MANUAL_REVIEW"),
        ("evidence", "map"),
        ("detected_at", "ts"),
    ],
    "Alert": [
        ("alert_id", "string"),
        ("kind", "string"),
        ("severity", "enum:INFO|WARN|PAGE"),
        ("order_id", "?string"),
        ("provider", "?string"),
        ("details", "map"),
        ("raised_at", "ts"),
    ],
    "AuditRecord": [
        ("audit_id", "string"),
        ("subject", "string"),
        ("action", "string"),
        ("rule", "?string"),
        ("inputs", "map"),
        ("outcome", "string"),
        ("actor", "?string"),
        ("at", "ts"),
    ],
    "DeadLetter": [
        ("source_topic", "string"),
        ("partition", "int"),
        ("offset", "long"),
        ("key", "?bytes"),
        ("value", "bytes"),
        (
            "error_kind",
            "enum:UNDECODABLE|SCHEMA_INVALID|SIGNATURE_INVALID|STALE_SIGNATURE"
            "|UNKNOWN_PROVIDER|BAD_PAYLOAD",
        ),
        ("error", "string"),
        ("failed_at", "ts"),
    ],
}


def _describe(t: Any, named: dict[str, dict]) -> str:
    if isinstance(t, list):
        assert len(t) == 2 and t[0] == "null", t  # the contract's only union shape
        return "?" + _describe(t[1], named)
    if isinstance(t, str):
        return _describe(named[t], named) if t in named else t
    if t.get("logicalType") == "timestamp-millis":
        assert t["type"] == "long"
        return "ts"
    if t["type"] == "enum":
        named[t["name"]] = t
        return "enum:" + "|".join(t["symbols"])
    if t["type"] == "map":
        assert t["values"] == "string"
        return "map"
    if t["type"] == "array":
        return f"array<{t['items']}>"
    raise AssertionError(f"unexpected type {t}")


# Records of the project's own topics (documented in topology.md), beside the contract's.
PROJECT_RECORDS = {"ReviewCase"}


def test_catalog_holds_exactly_the_contract_and_project_records() -> None:
    assert set(RECORDS) == set(CONTRACT) | PROJECT_RECORDS
    assert sorted(p.name for p in REPO_SCHEMAS.glob("*.avsc")) == sorted(
        [f"{r}.v1.avsc" for r in set(CONTRACT) | PROJECT_RECORDS]
        + [f"{r}.v2.avsc" for r in CONTRACT_ADDITIONS]
    )


# The project's additions to the contract (topology.md, "Contract additions"): v2 of these
# records, with everything of v1 unchanged so v1 writers still resolve into them.
# Fields added at the end, and enum symbols added at the end of an existing field's.
CONTRACT_ADDITIONS: dict[str, list[tuple[str, str]]] = {
    "OrderEvent": [("entry_id", "?string"), ("reason", "?string")],
    "LedgerEntry": [],
    "OrderStatus": [],
}
_ADDED_SYMBOLS = {
    ("OrderEvent", "type"): "REVERSAL_REQUESTED",
    ("LedgerEntry", "reason"): "OPERATOR_REVERSAL",
    ("OrderStatus", "status"): "REVERSED",
    ("OrderStatus", "previous_status"): "REVERSED",
}


def _with_additions(record: str) -> list[tuple[str, str]]:
    fields = [
        (name, f"{desc}|{_ADDED_SYMBOLS[(record, name)]}")
        if (record, name) in _ADDED_SYMBOLS else (name, desc)
        for name, desc in CONTRACT[record]
    ]
    return fields + CONTRACT_ADDITIONS.get(record, [])


def _fields(schema: dict) -> list[tuple[str, str]]:
    named: dict[str, dict] = {}
    actual = []
    for f in schema["fields"]:
        desc = _describe(f["type"], named)
        if desc.startswith("?"):
            assert f.get("default", "missing") is None, f"{f['name']} needs default null"
        elif "default" in f:
            desc += f"={f['default']}"
        actual.append((f["name"], desc))
    return actual


@pytest.mark.parametrize("record", sorted(CONTRACT_ADDITIONS))
def test_v1_is_the_contract_and_v2_only_adds_to_it(record: str) -> None:
    assert CATALOG.versions(record) == [1, 2]
    assert _fields(CATALOG.schema(record, version=1)) == CONTRACT[record]
    assert _fields(CATALOG.schema(record)) == _with_additions(record)
    # What a v1 writer (the order service, an older worker) sends still reads into v2.
    value = sample(record, catalog=CATALOG)
    for name, _ in CONTRACT_ADDITIONS[record]:
        del value[name]
    v1_symbols = dict(CONTRACT[record])
    for (rec, name), added in _ADDED_SYMBOLS.items():
        if rec == record and value.get(name) == added:  # a symbol v1 cannot write
            value[name] = v1_symbols[name].rsplit("|", 1)[-1]
    decoded = CATALOG.decode(record, CATALOG.encode(record, value, version=1))
    assert decoded == value | {name: None for name, _ in CONTRACT_ADDITIONS[record]}


@pytest.mark.parametrize("record", CONTRACT)
def test_schema_matches_contract(record: str) -> None:
    schema = CATALOG.schema(record)
    assert (schema["name"], schema["namespace"], schema["type"]) == (record, "topupguard", "record")
    assert schema.get("doc")
    assert _fields(schema) == _with_additions(record)
