"""A small client for the Confluent Schema Registry REST API (also served by Apicurio
Registry at /apis/ccompat/v7): fetch a schema by id, register a subject's schema.

Standard library only. Credentials go into the Authorization header and nowhere else:
no message or exception here carries them.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryUnavailable(Exception):
    """The registry could not be reached or answered 5xx: wait and ask again."""


class RegistryRefused(Exception):
    """The registry answered 4xx: asking again will not help. ``status`` is the HTTP code,
    ``error_code`` the registry's own code when it gave one (40401: unknown schema id,
    409/40901: incompatible with the subject's compatibility rule)."""

    def __init__(self, status: int, error_code: int | None, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code = status, error_code


class RegistryClient:
    def __init__(
        self,
        url: str,
        user: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE}
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def __repr__(self) -> str:
        return f"RegistryClient({self.url!r})"  # never the credentials

    def schema_by_id(self, schema_id: int) -> str:
        """The schema text registered under `schema_id` (Avro JSON)."""
        body = self._call("GET", f"/schemas/ids/{int(schema_id)}")
        return str(body["schema"])

    def register(self, subject: str, schema: str) -> int:
        """Registers `schema` under `subject` (idempotent for an identical schema) and
        returns its id. The registry refuses (409) a schema its compatibility rule rejects."""
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        body = self._call("POST", path, {"schema": schema, "schemaType": "AVRO"})
        return int(body["id"])

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers=self._headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")[:500]
            if exc.code >= 500:
                raise RegistryUnavailable(f"{method} {path}: HTTP {exc.code}: {text}") from None
            try:
                error_code = int(json.loads(text).get("error_code"))
            except (ValueError, TypeError, AttributeError):
                error_code = None
            raise RegistryRefused(exc.code, error_code,
                                  f"{method} {path}: HTTP {exc.code}: {text}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryUnavailable(f"{method} {self.url}{path}: {reason}") from None
