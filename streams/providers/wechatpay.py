"""WeChat Pay API v3 notifications.

Verify: RSA-SHA256 (PKCS#1 v1.5) over "timestamp\\nnonce\\nbody\\n" with the platform key
named by `wechatpay-serial` (a certificate serial in hex, or a `PUB_KEY_ID_...` public
key id). Then decrypt `resource` (AEAD_AES_256_GCM under the 32-byte API v3 key).

The signature covers the encrypted body, so a tampered ciphertext fails the signature
(SIGNATURE_INVALID); a correctly signed resource that will not decrypt is BAD_PAYLOAD.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.providers.base import (
    DEFAULT_TOLERANCE_S,
    Fields,
    Rejection,
    RejectionKind,
    SignedWebhookAdapter,
    check_age,
    load_json_object,
    reject,
    require_header,
)

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# Printable ASCII without spaces: a newline in the nonce could shift bytes between the
# nonce and the body while keeping the signed string (and so the signature) intact.
_NONCE = re.compile(r"[!-~]{1,64}")
# A direct-merchant payment is notified only on success (TRANSACTION.SUCCESS); the
# deduction products (PAP, parking) also send TRANSACTION.FAIL. The decrypted
# trade_state must agree with the envelope.
_TRADE_STATES: dict[str, tuple[PaymentKind, frozenset[str | None]]] = {
    "TRANSACTION.SUCCESS": (PaymentKind.PAYMENT_SUCCEEDED, frozenset({"SUCCESS"})),
    "TRANSACTION.FAIL": (
        PaymentKind.PAYMENT_FAILED,
        frozenset({None, "PAY_FAIL", "PAYERROR", "CLOSED", "REVOKED"}),
    ),
}
_REFUND_STATES = {
    "REFUND.SUCCESS": (PaymentKind.REFUND_SUCCEEDED, "SUCCESS"),
    "REFUND.ABNORMAL": (PaymentKind.REFUND_FAILED, "ABNORMAL"),
    "REFUND.CLOSED": (PaymentKind.REFUND_FAILED, "CLOSED"),
}
# Domestic merchants settle only in CNY; refund notifications may omit the currency.
_DEFAULT_CURRENCY = "CNY"


@dataclass(frozen=True, slots=True)
class PlatformKey:
    """A WeChat Pay platform public key; certificates also bound when it may sign."""

    public_key: RSAPublicKey
    not_before_ms: int | None = None
    not_after_ms: int | None = None


def load_platform_key(serial: str, pem: bytes) -> PlatformKey:
    """Load an X.509 certificate PEM or a bare public-key PEM. Raises ValueError."""
    if b"-----BEGIN CERTIFICATE-----" in pem:
        cert = x509.load_pem_x509_certificate(pem)
        try:
            serial_number = int(serial, 16)
        except ValueError:
            raise ValueError(f"wechatpay: certificate serial {serial!r} is not hex") from None
        # The SDK matches certificates by number; a mislabelled file would never verify.
        if cert.serial_number != serial_number:
            raise ValueError(f"wechatpay: the certificate for {serial!r} has another serial")
        key = cert.public_key()
        window = _epoch_ms(cert.not_valid_before_utc), _epoch_ms(cert.not_valid_after_utc)
    else:
        key = load_pem_public_key(pem)
        window = None, None
    if not isinstance(key, RSAPublicKey) or key.key_size < 2048:
        raise ValueError(f"wechatpay: key for {serial!r} is not an RSA public key of 2048+ bits")
    return PlatformKey(key, *window)


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


class WechatpayAdapter(SignedWebhookAdapter):
    name = "wechatpay"

    def __init__(
        self,
        platform_keys: Mapping[str, PlatformKey],
        apiv3_key: str,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
    ) -> None:
        super().__init__(tolerance_s)
        if not platform_keys:
            raise ValueError("wechatpay: at least one platform key is required")
        if not isinstance(apiv3_key, str) or len(apiv3_key.encode("utf-8")) != 32:
            raise ValueError("wechatpay: the API v3 key must be exactly 32 bytes")
        # Serials are hex (or PUB_KEY_ID_ + digits); the SDK compares them as numbers,
        # so letter case must not matter.
        self._keys = {serial.upper(): key for serial, key in platform_keys.items()}
        self._aead = AESGCM(apiv3_key.encode("utf-8"))

    def _verify(self, headers: Mapping[str, str], body: bytes, received_at_ms: int) -> None:
        signature_type = headers.get("wechatpay-signature-type", SIGNATURE_TYPE)
        if signature_type != SIGNATURE_TYPE:
            reject(RejectionKind.SIGNATURE_INVALID, "unsupported wechatpay-signature-type")
        timestamp = require_header(headers, "wechatpay-timestamp")
        nonce = require_header(headers, "wechatpay-nonce")
        serial = require_header(headers, "wechatpay-serial")
        encoded = require_header(headers, "wechatpay-signature")
        if not _TIMESTAMP.fullmatch(timestamp):
            reject(RejectionKind.SIGNATURE_INVALID, "wechatpay-timestamp is not unix seconds")
        if not _NONCE.fullmatch(nonce):
            reject(RejectionKind.SIGNATURE_INVALID, "wechatpay-nonce is malformed")
        key = self._keys.get(serial.upper())
        if key is None:
            reject(RejectionKind.SIGNATURE_INVALID, "wechatpay-serial names no configured key")
        message = b"%s\n%s\n%s\n" % (timestamp.encode(), nonce.encode(), body)
        try:
            signature = base64.b64decode(encoded, validate=True)
            key.public_key.verify(signature, message, PKCS1v15(), SHA256())
        except (binascii.Error, ValueError, InvalidSignature):
            raise Rejection(
                RejectionKind.SIGNATURE_INVALID, "wechatpay signature does not verify"
            ) from None
        if not _within(key, received_at_ms):
            reject(RejectionKind.SIGNATURE_INVALID, "platform certificate was not valid at receipt")
        check_age(int(timestamp), received_at_ms, self.tolerance_s)

    def _normalise(self, body: bytes) -> PaymentEvent | None:
        notification = load_json_object(body, "notification")
        event_type = notification.text("event_type")
        if event_type not in _TRADE_STATES and event_type not in _REFUND_STATES:
            return None
        if notification.text("resource_type") != "encrypt-resource":
            reject(RejectionKind.BAD_PAYLOAD, "field 'notification.resource_type' is unexpected")
        resource = self._decrypt(notification.obj("resource"))
        if event_type in _TRADE_STATES:
            return self._transaction(notification, event_type, resource)
        return self._refund(notification, event_type, resource)

    def _decrypt(self, resource: Fields) -> Fields:
        if resource.text("algorithm") != "AEAD_AES_256_GCM":
            reject(RejectionKind.BAD_PAYLOAD, "field 'notification.resource.algorithm' unsupported")
        associated = (
            resource.text("associated_data", empty_ok=True)
            if resource.has("associated_data")
            else ""
        )
        nonce = resource.text("nonce")
        try:
            ciphertext = base64.b64decode(resource.text("ciphertext"), validate=True)
            plaintext = self._aead.decrypt(
                nonce.encode("utf-8"), ciphertext, associated.encode("utf-8")
            )
        except (binascii.Error, ValueError, InvalidTag):
            raise Rejection(
                RejectionKind.BAD_PAYLOAD,
                "resource does not decrypt (wrong API v3 key or corrupted ciphertext)",
            ) from None
        return load_json_object(plaintext, "resource")

    def _transaction(self, notification: Fields, event_type: str, txn: Fields) -> PaymentEvent:
        kind, states = _TRADE_STATES[event_type]
        if txn.opt_text("trade_state") not in states:
            reject(
                RejectionKind.BAD_PAYLOAD,
                f"field 'resource.trade_state' contradicts event_type {event_type}",
            )
        amount = txn.obj("amount")
        return PaymentEvent(
            provider=self.name,
            event_id=notification.text("id"),
            external_txn_id=txn.text("transaction_id"),
            order_id=txn.text("out_trade_no"),
            kind=kind,
            amount_minor=amount.long("total"),
            currency=_currency(amount),
            merchant_id=txn.text("mchid"),
            app_id=txn.text("appid"),
            occurred_at=_occurred_at(notification, txn),
        )

    def _refund(self, notification: Fields, event_type: str, refund: Fields) -> PaymentEvent:
        kind, status = _REFUND_STATES[event_type]
        if refund.text("refund_status") != status:
            reject(
                RejectionKind.BAD_PAYLOAD,
                f"field 'resource.refund_status' contradicts event_type {event_type}",
            )
        amount = refund.obj("amount")
        return PaymentEvent(
            provider=self.name,
            event_id=notification.text("id"),
            external_txn_id=refund.text("transaction_id"),
            order_id=refund.text("out_trade_no"),
            kind=kind,
            amount_minor=amount.long("refund"),
            currency=_currency(amount),
            merchant_id=refund.text("mchid"),
            app_id=None,
            occurred_at=_occurred_at(notification, refund),
            refund_id=refund.text("refund_id"),
        )


def _within(key: PlatformKey, received_at_ms: int) -> bool:
    if key.not_before_ms is None or key.not_after_ms is None:
        return True
    return key.not_before_ms <= received_at_ms <= key.not_after_ms


def _currency(amount: Fields) -> str:
    return amount.currency("currency") if amount.has("currency") else _DEFAULT_CURRENCY


def _occurred_at(notification: Fields, resource: Fields) -> int:
    # success_time exists only for successes; the notification's own time otherwise.
    if resource.has("success_time"):
        return resource.rfc3339_ms("success_time")
    return notification.rfc3339_ms("create_time")
