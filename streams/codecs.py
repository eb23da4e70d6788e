"""Avro single-object encoding for every topic value (see CONTRACT.md, "Conventions").

With a schema registry attached (`attach_registry`), decode also reads the Confluent wire
format and encode writes it for the topics registered as outputs (streams/confluent.py).

Wire format: ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint of the writer
schema's Parsing Canonical Form + Avro binary body. Schemas live in ``schemas/`` as
``<RecordName>.v<N>.avsc``; the latest version of a record is the writer on encode and
the reader on decode, and every version is accepted as a writer.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from streams.confluent import CONFLUENT_MAGIC, ConfluentFraming, UnusableWriterSchema, schema_id_of
from streams.confluent import HEADER_LEN as CONFLUENT_HEADER_LEN

__all__ = [
    "MAGIC",
    "DecodeError",
    "EncodeError",
    "SchemaCatalog",
    "default_catalog",
]

MAGIC = b"\xc3\x01"
_HEADER_LEN = len(MAGIC) + 8
_FILE_NAME = re.compile(r"^(?P<record>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[0-9]+)\.avsc$")
_MISSING = object()

# fastavro's C writer coerces some mismatches silently (12.5 -> 12 in a long, "false" ->
# True, "ab" -> ["a", "b"], 2**40 into an int that Java readers reject), so these field
# types are checked before writing. Strings, bytes and maps it already refuses; enums it
# refuses with an unhelpful message.
_SCALAR_CHECKS: dict[str, tuple[frozenset[type], tuple[int, int] | None]] = {
    "int": (frozenset({int}), (-(2**31), 2**31 - 1)),
    "long": (frozenset({int}), (-(2**63), 2**63 - 1)),
    "boolean": (frozenset({bool}), None),
    "float": (frozenset({float, int}), None),
    "double": (frozenset({float, int}), None),
    "array": (frozenset({list, tuple}), None),
}


class DecodeError(Exception):
    """Bytes that cannot be turned into a record.

    ``reason`` is ``'UNDECODABLE'`` (bad magic, too short, unknown fingerprint,
    truncated or garbage body) or ``'SCHEMA_INVALID'`` (the writer schema is known but
    cannot be resolved into the reader schema, or the bytes hold another record type).
    It doubles as the DLQ ``error_kind``; ``str(exc)`` is the human message.
    """

    UNDECODABLE = "UNDECODABLE"
    SCHEMA_INVALID = "SCHEMA_INVALID"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's default pickling would replay only `message` into __init__.
        return (type(self), (self.reason, str(self)))


class EncodeError(Exception):
    """A value that does not fit its schema."""


@dataclass(frozen=True, slots=True)
class _FieldCheck:
    name: str
    avro_type: str
    types: frozenset[type]
    bounds: tuple[int, int] | None = None
    symbols: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class _Version:
    record: str
    version: int
    source: dict[str, Any]  # the .avsc as written, logical types included
    parsed: dict[str, Any]  # fastavro-parsed with logical types stripped
    fingerprint: bytes
    header: bytes
    checks: tuple[_FieldCheck, ...]


@dataclass(frozen=True, slots=True)
class _Writer:
    """Everything decode needs for one fingerprint, prepared once."""

    record: str
    version: int
    schema: dict[str, Any]
    reader: dict[str, Any] | None  # None when the writer is the latest: no resolution needed


def _strip_logical_types(schema: Any) -> Any:
    # Times stay plain int epoch millis in Python (no datetime round trips on the hot
    # path). Parsing Canonical Form drops logicalType, so the wire and fingerprint
    # are the same as for the schema as written.
    if isinstance(schema, dict):
        return {k: _strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical_types(v) for v in schema]
    return schema


def _field_checks(parsed: dict[str, Any]) -> tuple[_FieldCheck, ...]:
    named = parsed.get("__named_schemas", {})
    checks = []
    for field in parsed["fields"]:
        branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
        non_null = [b for b in branches if b != "null"]
        if len(non_null) != 1:
            continue  # wider unions: fastavro picks the branch by type, nothing to coerce
        branch = (
            named.get(non_null[0], non_null[0]) if isinstance(non_null[0], str) else non_null[0]
        )
        kind = branch["type"] if isinstance(branch, dict) else branch
        nullable = {type(None)} if "null" in branches else set()
        if kind in _SCALAR_CHECKS:
            types, bounds = _SCALAR_CHECKS[kind]
            checks.append(_FieldCheck(field["name"], kind, types | nullable, bounds))
        elif kind == "enum":
            symbols = frozenset(branch["symbols"])
            checks.append(
                _FieldCheck(field["name"], kind, frozenset({str}) | nullable, None, symbols)
            )
    return tuple(checks)


def _crc64_avro(schema: dict[str, Any]) -> bytes:
    # fastavro already returns the hex of the little-endian byte order (as Java does),
    # which is the order single-object encoding puts on the wire.
    return bytes.fromhex(_fastavro_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def _load_version(path: Path, record: str, version: int) -> _Version:
    source = json.loads(path.read_text(encoding="utf-8"))
    # Each file gets its own name registry: v1 and v2 of a record define the same names.
    parsed = parse_schema(_strip_logical_types(source), named_schemas={})
    if parsed.get("type") != "record" or parsed["name"].rsplit(".", 1)[-1] != record:
        raise ValueError(f"{path.name}: expected a record named {record!r}")
    fp = _crc64_avro(parse_schema(source, named_schemas={}))
    return _Version(record, version, source, parsed, fp, MAGIC + fp, _field_checks(parsed))


def _default_schema_dir() -> Path:
    env = os.environ.get("TOPUP_SCHEMA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "schemas"


class SchemaCatalog:
    """All versions of all records in a schema directory, parsed once at construction."""

    def __init__(self, schema_dir: Path | None = None) -> None:
        self.schema_dir = Path(schema_dir) if schema_dir is not None else _default_schema_dir()
        by_record: dict[str, dict[int, _Version]] = {}
        for path in sorted(self.schema_dir.glob("*.avsc")):
            m = _FILE_NAME.match(path.name)
            if m is None:
                raise ValueError(f"{path}: schema files must be named <RecordName>.v<N>.avsc")
            record, version = m["record"], int(m["version"])
            by_record.setdefault(record, {})[version] = _load_version(path, record, version)
        if not by_record:
            raise ValueError(f"no *.avsc schemas in {self.schema_dir}")

        self._versions = {r: dict(sorted(vs.items())) for r, vs in sorted(by_record.items())}
        self._latest = {r: vs[max(vs)] for r, vs in self._versions.items()}
        self._writers: dict[bytes, _Writer] = {}
        self.confluent: ConfluentFraming | None = None
        for record, versions in self._versions.items():
            latest = self._latest[record]
            # Ascending order: if two versions share a canonical form (they differ only
            # in docs or defaults) their bytes are identical, so the later one may win.
            for v in versions.values():
                owner = self._writers.get(v.fingerprint)
                if owner is not None and owner.record != record:
                    raise ValueError(f"fingerprint collision: {owner.record} and {record}")
                reader = None if v.fingerprint == latest.fingerprint else latest.parsed
                self._writers[v.fingerprint] = _Writer(record, v.version, v.parsed, reader)

    def attach_registry(self, framing: ConfluentFraming) -> None:
        """Reads the Confluent wire format from now on, and writes it for the topics
        registered with `framing.register_output`."""
        self.confluent = framing

    def prefetch(self, values: Iterable[bytes | None]) -> None:
        """Fetches the registry schemas `values` need (no-op without a registry); waits
        out an unreachable registry, so call it outside transactions."""
        if self.confluent is not None:
            self.confluent.prefetch(values)

    def records(self) -> list[str]:
        return list(self._versions)

    def versions(self, record_name: str) -> list[int]:
        return list(self._record(record_name))

    def fingerprint(self, record_name: str, version: int | None = None) -> bytes:
        return self._version(record_name, version).fingerprint

    def schema(self, record_name: str, version: int | None = None) -> dict[str, Any]:
        """The schema JSON as written in its file (a copy)."""
        return copy.deepcopy(self._version(record_name, version).source)

    def encode(
        self,
        record_name: str,
        value: Mapping[str, Any],
        *,
        version: int | None = None,
        topic: str | None = None,
    ) -> bytes:
        """Single-object bytes for `value`, written with the latest (or given) version;
        Confluent-framed when `topic` is registered as a Confluent output (whose schema
        is the latest version, so only the header differs)."""
        v = self._version(record_name, version)
        header = v.header
        if topic is not None and version is None and self.confluent is not None:
            header = self.confluent.output_header(topic) or header
        if not isinstance(value, Mapping):
            raise EncodeError(f"{record_name}: expected a mapping, got {type(value).__name__}")
        for check in v.checks:
            x = value.get(check.name, _MISSING)
            if x is _MISSING:
                continue  # the writer fills the default or reports the missing field
            if type(x) not in check.types:
                raise EncodeError(
                    f"{record_name}.{check.name}: expected {check.avro_type}, "
                    f"got {type(x).__name__} {x!r}"
                )
            if check.bounds and x is not None and not check.bounds[0] <= x <= check.bounds[1]:
                raise EncodeError(
                    f"{record_name}.{check.name}: {x} is out of range for an Avro {check.avro_type}"
                )
            if check.symbols and x is not None and x not in check.symbols:
                raise EncodeError(
                    f"{record_name}.{check.name}: {x!r} is not one of {sorted(check.symbols)}"
                )
        buf = io.BytesIO()
        buf.write(header)
        try:
            # strict: an unknown key is almost always a typo that would otherwise be
            # dropped silently; missing keys are fine only where the schema has a default.
            schemaless_writer(buf, v.parsed, value, strict_allow_default=True)
        except Exception as exc:  # fastavro raises ValueError/TypeError/OverflowError/...
            raise EncodeError(f"{record_name} v{v.version}: {exc}") from exc
        return buf.getvalue()

    def decode(self, record_name: str, data: bytes) -> dict[str, Any]:
        """Read single-object bytes of any known version into the latest `record_name`."""
        if isinstance(data, bytearray | memoryview):
            data = bytes(data)
        elif not isinstance(data, bytes):
            raise DecodeError(DecodeError.UNDECODABLE, f"expected bytes, got {type(data).__name__}")
        if self.confluent is not None and data[:1] == CONFLUENT_MAGIC:
            return self._decode_confluent(record_name, data)
        if len(data) < _HEADER_LEN:
            raise DecodeError(
                DecodeError.UNDECODABLE,
                f"{len(data)} bytes is too short for an Avro single-object header "
                f"({_HEADER_LEN} bytes)",
            )
        if not data.startswith(MAGIC):
            raise DecodeError(
                DecodeError.UNDECODABLE,
                f"not Avro single-object encoding: starts with {data[:2].hex()}, expected c301",
            )
        writer = self._writers.get(data[2:_HEADER_LEN])
        if writer is None:
            raise DecodeError(
                DecodeError.UNDECODABLE,
                f"unknown writer schema fingerprint {data[2:_HEADER_LEN].hex()}",
            )
        if writer.record != record_name:
            self._record(record_name)  # an unknown requested name is a caller bug, not bad bytes
            raise DecodeError(
                DecodeError.SCHEMA_INVALID,
                f"expected record {record_name}, but the bytes hold record {writer.record} "
                f"v{writer.version}",
            )

        fo = io.BytesIO(data)  # shares the buffer with `data`, no copy
        fo.seek(_HEADER_LEN)
        try:
            record = schemaless_reader(fo, writer.schema, writer.reader)
        except SchemaResolutionError as exc:
            raise DecodeError(
                DecodeError.SCHEMA_INVALID,
                f"{record_name} v{writer.version} cannot be read as the latest "
                f"{record_name}: {exc}",
            ) from exc
        except EOFError as exc:
            raise DecodeError(
                DecodeError.UNDECODABLE, f"truncated {record_name} v{writer.version} body"
            ) from exc
        except Exception as exc:  # garbage makes fastavro raise many types
            raise DecodeError(
                DecodeError.UNDECODABLE,
                f"corrupt {record_name} v{writer.version} body: {type(exc).__name__}: {exc}",
            ) from exc
        trailing = len(data) - fo.tell()
        if trailing:
            # A single-object message holds exactly one datum; leftovers mean corruption.
            raise DecodeError(
                DecodeError.UNDECODABLE,
                f"{trailing} unexpected trailing bytes after the {record_name} body",
            )
        return record

    def _decode_confluent(self, record_name: str, data: bytes) -> dict[str, Any]:
        assert self.confluent is not None
        schema_id = schema_id_of(data)
        if schema_id is None:
            raise DecodeError(
                DecodeError.UNDECODABLE,
                f"{len(data)} bytes is too short for a Confluent header ({CONFLUENT_HEADER_LEN} "
                "bytes)",
            )
        reader = self._version(record_name, None)
        try:
            writer = self.confluent.writer_schema(schema_id)
        except UnusableWriterSchema as exc:
            raise DecodeError(DecodeError.SCHEMA_INVALID, str(exc)) from None
        fo = io.BytesIO(data)
        fo.seek(CONFLUENT_HEADER_LEN)
        what = f"{record_name} (registry schema id {schema_id})"
        try:
            record = schemaless_reader(fo, writer, reader.parsed)
        except SchemaResolutionError as exc:
            raise DecodeError(
                DecodeError.SCHEMA_INVALID,
                f"writer schema id {schema_id} cannot be read as {record_name}: {exc}",
            ) from exc
        except EOFError as exc:
            raise DecodeError(DecodeError.UNDECODABLE, f"truncated {what} body") from exc
        except Exception as exc:  # garbage makes fastavro raise many types
            raise DecodeError(
                DecodeError.UNDECODABLE, f"corrupt {what} body: {type(exc).__name__}: {exc}"
            ) from exc
        trailing = len(data) - fo.tell()
        if trailing:
            raise DecodeError(
                DecodeError.UNDECODABLE, f"{trailing} unexpected trailing bytes after the {what}"
            )
        return record

    def _record(self, record_name: str) -> dict[int, _Version]:
        try:
            return self._versions[record_name]
        except KeyError:
            raise KeyError(
                f"unknown record {record_name!r}; known: {', '.join(self._versions)}"
            ) from None

    def _version(self, record_name: str, version: int | None) -> _Version:
        versions = self._record(record_name)
        if version is None:
            return self._latest[record_name]
        try:
            return versions[version]
        except KeyError:
            raise KeyError(f"{record_name} has no v{version}; known: {list(versions)}") from None


@functools.cache
def default_catalog() -> SchemaCatalog:
    return SchemaCatalog()
