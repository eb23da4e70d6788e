"""A small in-memory schema registry speaking the Confluent REST API subset that
confluent-kafka's SchemaRegistryClient and TopUp Guard use.

Tests use a real registry (Apicurio Registry, deploy/apicurio); this stand-in stays for
the one test of the worker's basic-auth credentials, which Apicurio cannot check (it
authenticates with OIDC). Nothing in streams/ depends on this file.

Served: POST /subjects/{s}/versions, GET /schemas/ids/{id}, GET /subjects,
GET /subjects/{s}/versions[/latest|/{n}], PUT/GET /config[/{s}]. Compatibility: BACKWARD
(default) or NONE, checked against the subject's latest version with Avro's resolution
rules for records, enums, arrays, maps, unions and primitive promotions.
Optional basic auth: REGISTRY_USER and REGISTRY_PASSWORD in the environment.
Optional seed: REGISTRY_PRELOAD, a JSON file {"subject": [schema, ...]}, registered in
order before the port opens (ids from 1), so a client never sees the registry without it.
Stdlib only: `python3 server.py PORT`.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
PROMOTIONS = {"int": {"int", "long", "float", "double"}, "long": {"long", "float", "double"},
              "float": {"float", "double"}, "double": {"double"},
              "string": {"string", "bytes"}, "bytes": {"bytes", "string"}}


class Incompatible(Exception):
    pass


def _resolve(schema: Any, named: dict[str, Any], ns: str = "") -> Any:
    """Named references replaced by their definitions (names recorded as they appear)."""
    if isinstance(schema, str):
        full = schema if "." in schema or not ns else f"{ns}.{schema}"
        return named.get(full, named.get(schema, schema))
    if isinstance(schema, list):
        return [_resolve(s, named, ns) for s in schema]
    if schema.get("type") in ("record", "enum", "fixed"):
        space = schema.get("namespace", ns)
        full = schema["name"] if "." in schema["name"] else (
            f"{space}.{schema['name']}" if space else schema["name"])
        named[full] = named[schema["name"]] = schema
        if schema["type"] == "record":
            for field in schema["fields"]:
                field["type"] = _resolve(field["type"], named, space)
        return schema
    if schema.get("type") == "array":
        schema["items"] = _resolve(schema["items"], named, ns)
    elif schema.get("type") == "map":
        schema["values"] = _resolve(schema["values"], named, ns)
    return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    return schema if isinstance(schema, str) else schema["type"]


def check_readable(reader: Any, writer: Any, path: str = "") -> None:
    """Raises Incompatible unless data written with `writer` can be read with `reader`."""
    rk, wk = _kind(reader), _kind(writer)
    if wk == "union":
        for branch in writer:
            check_readable(reader, branch, path)
        return
    if rk == "union":
        for branch in reader:
            try:
                check_readable(branch, writer, path)
                return
            except Incompatible:
                continue
        raise Incompatible(f"{path or 'schema'}: no union branch reads {wk}")
    if wk in PROMOTIONS or wk in ("null", "boolean"):
        if rk != wk and rk not in PROMOTIONS.get(wk, ()):
            raise Incompatible(f"{path or 'schema'}: {wk} cannot be read as {rk}")
        return
    if rk != wk:
        raise Incompatible(f"{path or 'schema'}: {wk} cannot be read as {rk}")
    if wk == "record":
        written = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            name = f"{path}.{field['name']}" if path else field["name"]
            if field["name"] in written:
                check_readable(field["type"], written[field["name"]]["type"], name)
            elif "default" not in field:
                raise Incompatible(f"{name}: new field without a default")
    elif wk == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            raise Incompatible(f"{path or 'enum'}: symbols {sorted(missing)} were removed")
    elif wk == "array":
        check_readable(reader["items"], writer["items"], f"{path}[]")
    elif wk == "map":
        check_readable(reader["values"], writer["values"], f"{path}{{}}")
    elif wk == "fixed" and reader["size"] != writer["size"]:
        raise Incompatible(f"{path or 'fixed'}: size changed")


class Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.schemas: list[str] = []  # id - 1 -> schema text
        self.subjects: dict[str, list[int]] = {}  # subject -> ids by version
        self.config: dict[str, str] = {}
        self.default_compat = "BACKWARD"

    def register(self, subject: str, text: str) -> dict[str, Any]:
        try:
            parsed = json.loads(text)
        except ValueError:
            return {"error_code": 42201, "message": "Invalid schema: not JSON"}
        with self.lock:
            canonical = json.dumps(parsed, sort_keys=True)
            ids = self.subjects.setdefault(subject, [])
            for schema_id in ids:
                if json.dumps(json.loads(self.schemas[schema_id - 1]), sort_keys=True) == canonical:
                    return {"id": schema_id}
            if ids and self.config.get(subject, self.default_compat) != "NONE":
                latest = json.loads(self.schemas[ids[-1] - 1])
                try:
                    check_readable(_resolve(parsed, {}), _resolve(latest, {}))
                except Incompatible as exc:
                    return {"error_code": 409, "message": f"Schema being registered is "
                            f"incompatible with an earlier schema for subject {subject!r}: {exc}"}
            self.schemas.append(text)
            ids.append(len(self.schemas))
            return {"id": len(self.schemas)}


class Handler(BaseHTTPRequestHandler):
    registry = Registry()
    auth: str | None = None

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests read the registry's answers, not its log

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        if self.auth is not None and self.headers.get("Authorization") != self.auth:
            self._reply(401, {"error_code": 401, "message": "Unauthorized"})
            return
        parts = [urllib.parse.unquote(p) for p in
                 urllib.parse.urlsplit(self.path).path.strip("/").split("/") if p]
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        reg = self.registry
        versions = len(parts) >= 3 and parts[0] == "subjects" and parts[2] == "versions"
        if method == "POST" and versions and len(parts) == 3:
            if body.get("schemaType", "AVRO") != "AVRO":
                self._reply(422, {"error_code": 42201, "message": "only AVRO is served"})
                return
            answer = reg.register(parts[1], body.get("schema", ""))
            status = 200 if "id" in answer else (409 if answer["error_code"] == 409 else 422)
            self._reply(status, answer)
        elif method == "GET" and parts[:2] == ["schemas", "ids"] and len(parts) == 3:
            schema_id = int(parts[2]) if parts[2].isdigit() else 0
            if not 0 < schema_id <= len(reg.schemas):
                self._reply(404, {"error_code": 40403, "message": "Schema not found"})
            else:
                self._reply(200, {"schema": reg.schemas[schema_id - 1]})
        elif method == "GET" and parts == ["subjects"]:
            self._reply(200, sorted(reg.subjects))
        elif method == "GET" and versions:
            ids = reg.subjects.get(parts[1])
            if not ids:
                self._reply(404, {"error_code": 40401, "message": "Subject not found"})
            elif len(parts) == 3:
                self._reply(200, list(range(1, len(ids) + 1)))
            else:
                version = len(ids) if parts[3] == "latest" else int(parts[3])
                schema_id = ids[version - 1]
                self._reply(200, {"subject": parts[1], "version": version, "id": schema_id,
                                  "schema": reg.schemas[schema_id - 1]})
        elif parts and parts[0] == "config" and len(parts) <= 2:
            if method == "PUT":
                level = str(body.get("compatibility", "")).upper()
                if level not in ("BACKWARD", "NONE"):
                    self._reply(422, {"error_code": 42203, "message": "BACKWARD or NONE only"})
                    return
                if len(parts) == 2:
                    reg.config[parts[1]] = level
                else:
                    reg.default_compat = level
                self._reply(200, {"compatibility": level})
            else:
                level = reg.config.get(parts[1], reg.default_compat) if len(parts) == 2 \
                    else reg.default_compat
                self._reply(200, {"compatibilityLevel": level})
        else:
            self._reply(404, {"error_code": 404, "message": f"{method} {self.path} not served"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")


def main() -> None:
    port = int(sys.argv[1])
    user, password = os.environ.get("REGISTRY_USER"), os.environ.get("REGISTRY_PASSWORD")
    if user:
        Handler.auth = "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode()
    preload = os.environ.get("REGISTRY_PRELOAD")
    if preload:
        with open(preload, encoding="utf-8") as file:
            for subject, schemas in json.load(file).items():
                for schema in schemas:
                    answer = Handler.registry.register(subject, json.dumps(schema))
                    if "id" not in answer:
                        raise SystemExit(f"REGISTRY_PRELOAD: {answer['message']}")
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"schema registry listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
