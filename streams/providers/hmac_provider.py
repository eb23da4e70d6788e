"""Our own signed-JSON webhook (`hmac`), and the `t=..,v1=..` scheme it shares with Stripe.

Header: `x-topup-signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`,
v1 = hex(HMAC-SHA256(secret, "<t>.<body>")).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.providers.base import (
    DEFAULT_TOLERANCE_S,
    RejectionKind,
    SignedWebhookAdapter,
    check_age,
    load_json_object,
    reject,
    require_header,
    secret_keys,
)

SIGNATURE_HEADER = "x-topup-signature"
# Twelve digits reach the year 33658; the cap keeps int() cheap on hostile input.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

EVENT_TYPES = {
    "payment.succeeded": PaymentKind.PAYMENT_SUCCEEDED,
    "payment.failed": PaymentKind.PAYMENT_FAILED,
    "refund.succeeded": PaymentKind.REFUND_SUCCEEDED,
    "refund.failed": PaymentKind.REFUND_FAILED,
}
_REFUND_KINDS = {PaymentKind.REFUND_SUCCEEDED, PaymentKind.REFUND_FAILED}


def sign_v1(key: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(key, b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def parse_signature_header(value: str) -> tuple[int, list[str]]:
    """Split `t=..,v1=..[,v1=..]`; unknown schemes (Stripe's `v0`) are skipped."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in value.split(","):
        key, sep, field = item.partition("=")
        if not sep:
            reject(RejectionKind.SIGNATURE_INVALID, "signature header is malformed")
        if key == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(field):
                reject(RejectionKind.SIGNATURE_INVALID, "signature header has a bad timestamp")
            timestamp = int(field)
        elif key == "v1":
            signatures.append(field)
    if timestamp is None or not signatures:
        reject(RejectionKind.SIGNATURE_INVALID, "signature header lacks t= or v1=")
    return timestamp, signatures


def verify_timestamped_hmac(
    header: str, body: bytes, keys: Sequence[bytes], received_at_ms: int, tolerance_s: int
) -> None:
    """Any active key may match any v1 entry, so secrets can rotate with overlap."""
    timestamp, candidates = parse_signature_header(header)
    expected = [sign_v1(key, timestamp, body) for key in keys]
    # compare_digest only accepts ASCII str; a non-ASCII candidate cannot match anyway.
    ascii_candidates = [c for c in candidates if c.isascii()]
    if not any(hmac.compare_digest(e, c) for e in expected for c in ascii_candidates):
        reject(RejectionKind.SIGNATURE_INVALID, "no v1 signature matches an active secret")
    check_age(timestamp, received_at_ms, tolerance_s)


class HmacAdapter(SignedWebhookAdapter):
    name = "hmac"

    def __init__(self, secrets: Sequence[str], tolerance_s: int = DEFAULT_TOLERANCE_S) -> None:
        super().__init__(tolerance_s)
        self._keys = secret_keys(secrets, self.name)

    def _verify(self, headers: Mapping[str, str], body: bytes, received_at_ms: int) -> None:
        header = require_header(headers, SIGNATURE_HEADER)
        verify_timestamped_hmac(header, body, self._keys, received_at_ms, self.tolerance_s)

    def _normalise(self, body: bytes) -> PaymentEvent | None:
        payload = load_json_object(body, "body")
        kind = EVENT_TYPES.get(payload.text("type"))
        if kind is None:
            return None
        refund_id = payload.opt_text("refund_id")
        if kind in _REFUND_KINDS and refund_id is None:
            reject(RejectionKind.BAD_PAYLOAD, "field 'body.refund_id' is required for refunds")
        if kind not in _REFUND_KINDS and refund_id is not None:
            reject(RejectionKind.BAD_PAYLOAD, "field 'body.refund_id' must be null for payments")
        return PaymentEvent(
            provider=self.name,
            event_id=payload.text("event_id"),
            external_txn_id=payload.text("external_txn_id"),
            order_id=payload.text("order_id"),
            kind=kind,
            amount_minor=payload.long("amount_minor"),
            currency=payload.currency("currency"),
            merchant_id=payload.text("merchant_id"),
            app_id=payload.opt_text("app_id"),
            occurred_at=payload.long("occurred_at"),
            refund_id=refund_id,
        )
