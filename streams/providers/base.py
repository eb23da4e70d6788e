"""What every webhook adapter shares.

An adapter turns one raw delivery (lower-cased headers, body bytes, receipt time) into a
`PaymentEvent`, or refuses it with a `Rejection`. `SignedWebhookAdapter` fixes the order
of work: the signature is checked over the raw bytes before anything in the body is read.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NoReturn, Protocol

from streams.domain.common.currencies import is_currency
from streams.domain.common.payments import PaymentEvent

DEFAULT_TOLERANCE_S = 300
LONG_MAX = 2**63 - 1
_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


class RejectionKind(StrEnum):
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    STALE_SIGNATURE = "STALE_SIGNATURE"
    BAD_PAYLOAD = "BAD_PAYLOAD"
    UNKNOWN_PROVIDER = "UNKNOWN_PROVIDER"


class Rejection(Exception):
    """A delivery we refuse. `kind` is the DLQ `error_kind`; the message is for humans.

    Messages never carry a secret, a signature, or more than a short excerpt of input.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = RejectionKind(kind)
        self.message = message

    def __repr__(self) -> str:
        return f"Rejection({self.kind.value!r}, {self.message!r})"


class WebhookAdapter(Protocol):
    name: str

    def parse(
        self, headers: Mapping[str, str], body: bytes, received_at_ms: int
    ) -> PaymentEvent | None:
        """Verify, then normalise. None: a verified event type we do not act on.

        Raises Rejection for anything wrong and nothing else, whatever the input.
        """
        ...


class SignedWebhookAdapter(ABC):
    """Template for adapters: `_verify` sees raw bytes, `_normalise` runs only after it."""

    name: str

    def __init__(self, tolerance_s: int) -> None:
        if type(tolerance_s) is not int or tolerance_s < 0:
            raise ValueError(f"{self.name}: signature tolerance must be a whole number >= 0")
        self.tolerance_s = tolerance_s

    def __repr__(self) -> str:
        # Subclasses hold keys; the representation names none of them.
        return f"{type(self).__name__}(tolerance_s={self.tolerance_s})"

    def parse(
        self, headers: Mapping[str, str], body: bytes, received_at_ms: int
    ) -> PaymentEvent | None:
        try:
            if not isinstance(body, bytes | bytearray | memoryview):
                raise Rejection(RejectionKind.BAD_PAYLOAD, f"{self.name}: body is not bytes")
            raw = bytes(body)
            self._verify(_lower_keys(headers), raw, received_at_ms)
        except Rejection:
            raise
        except Exception as exc:
            # Fail closed: an input we could not even check is treated as forged.
            raise Rejection(
                RejectionKind.SIGNATURE_INVALID,
                f"{self.name}: signature could not be checked ({type(exc).__name__})",
            ) from exc
        try:
            return self._normalise(raw)
        except Rejection:
            raise
        except Exception as exc:
            raise Rejection(
                RejectionKind.BAD_PAYLOAD,
                f"{self.name}: payload could not be read ({type(exc).__name__})",
            ) from exc

    @abstractmethod
    def _verify(self, headers: Mapping[str, str], body: bytes, received_at_ms: int) -> None:
        """Raise Rejection unless the delivery is authentic and fresh."""

    @abstractmethod
    def _normalise(self, body: bytes) -> PaymentEvent | None:
        """Map a verified body to a PaymentEvent (None for types we ignore)."""


def adapter_for(adapters: Mapping[str, WebhookAdapter], provider: str) -> WebhookAdapter:
    adapter = adapters.get(provider) if isinstance(provider, str) else None
    if adapter is None:
        raise Rejection(
            RejectionKind.UNKNOWN_PROVIDER,
            f"no webhook adapter is configured for provider {_excerpt(provider)}",
        )
    return adapter


def secret_keys(secrets: Sequence[str], provider: str) -> tuple[bytes, ...]:
    """Validate a rotation list of shared secrets and encode them for HMAC."""
    if isinstance(secrets, str) or not secrets:
        raise ValueError(f"{provider}: expected a non-empty list of secrets")
    if not all(isinstance(s, str) and s.strip() for s in secrets):
        raise ValueError(f"{provider}: every secret must be a non-empty string")
    return tuple(s.encode("utf-8") for s in secrets)


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    # The receiver already lower-cases names; doing it again costs nothing and makes
    # direct callers (tests, tools) behave the same.
    return {key.lower(): value for key, value in headers.items()}


def _excerpt(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reject(kind: RejectionKind, message: str) -> NoReturn:
    raise Rejection(kind, message)


def require_header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not isinstance(value, str) or not value:
        reject(RejectionKind.SIGNATURE_INVALID, f"header {name!r} is missing or empty")
    return value


def check_age(timestamp_s: int, received_at_ms: int, tolerance_s: int) -> None:
    """Both directions: a timestamp from the future is as suspect as an old one."""
    skew_ms = timestamp_s * 1000 - received_at_ms
    if abs(skew_ms) > tolerance_s * 1000:
        direction = "after" if skew_ms > 0 else "before"
        reject(
            RejectionKind.STALE_SIGNATURE,
            f"signature timestamp is {abs(skew_ms) // 1000} s {direction} receipt "
            f"(tolerance {tolerance_s} s)",
        )


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"JSON constant {name} is not allowed")


def load_json_object(raw: bytes, what: str) -> Fields:
    """Strict UTF-8 JSON (no NaN/Infinity) whose top level is an object."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError):
        # UnicodeDecodeError and JSONDecodeError are both ValueErrors; deep nesting is not.
        raise Rejection(RejectionKind.BAD_PAYLOAD, f"{what} is not valid UTF-8 JSON") from None
    return Fields(value, what)


class Fields:
    """Typed reads from one decoded JSON object; every failure names the field's path."""

    __slots__ = ("_obj", "_path")

    def __init__(self, obj: Any, path: str) -> None:
        if not isinstance(obj, dict):
            reject(RejectionKind.BAD_PAYLOAD, f"{path} must be a JSON object")
        self._obj: dict[str, Any] = obj
        self._path = path

    def _name(self, key: str) -> str:
        return f"{self._path}.{key}"

    def _bad(self, key: str, expected: str) -> NoReturn:
        value = self._obj.get(key)
        got = "nothing" if value is None else f"a {type(value).__name__}"
        reject(
            RejectionKind.BAD_PAYLOAD, f"field {self._name(key)!r} must be {expected}, got {got}"
        )

    def has(self, key: str) -> bool:
        return self._obj.get(key) is not None

    def obj(self, key: str) -> Fields:
        if not isinstance(self._obj.get(key), dict):
            self._bad(key, "an object")
        return Fields(self._obj[key], self._name(key))

    def objects(self, key: str) -> list[Fields]:
        items = self._obj.get(key)
        if not isinstance(items, list):
            self._bad(key, "a list")
        return [Fields(item, f"{self._name(key)}[{i}]") for i, item in enumerate(items)]

    def text(self, key: str, *, empty_ok: bool = False) -> str:
        value = self._obj.get(key)
        if not isinstance(value, str) or not (value or empty_ok):
            self._bad(key, "a non-empty string")
        return value

    def opt_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else None

    def long(self, key: str) -> int:
        value = self._obj.get(key)
        # bool is an int subclass and a float is never money: both are refused.
        if type(value) is not int or not 0 <= value <= LONG_MAX:
            self._bad(key, "an integer >= 0")
        return value

    def epoch_s_as_ms(self, key: str) -> int:
        seconds = self.long(key)
        if seconds * 1000 > LONG_MAX:
            self._bad(key, "a plausible unix time")
        return seconds * 1000

    def currency(self, key: str) -> str:
        value = self._obj.get(key)
        # Providers differ in case (Stripe sends "usd"); the code itself must exist.
        if not isinstance(value, str) or not is_currency(value.upper()):
            self._bad(key, "an ISO 4217 currency code")
        return value.upper()

    def rfc3339_ms(self, key: str) -> int:
        """An RFC 3339 time with an explicit offset, as epoch milliseconds."""
        try:
            moment: datetime | None = datetime.fromisoformat(self.text(key))
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            self._bad(key, "an RFC 3339 time with an offset")
        millis = (moment - _EPOCH) // timedelta(milliseconds=1)
        if not 0 <= millis <= LONG_MAX:
            self._bad(key, "a time after 1970")
        return millis
