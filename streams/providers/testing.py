"""Signed webhook deliveries built the way each provider sends them.

For tests, load generators and demos. A `SignedDelivery` holds what the HTTP receiver
writes to `topup.webhooks`: lower-cased headers and the body bytes. Builders are
deterministic (nonces and ids derive from the content), so a replayed load is identical.
Provider timestamps are whole seconds, so `occurred_at` survives a round trip through
`parse` only when it is a multiple of 1000.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.providers import hmac_provider, stripe_provider
from streams.providers.wechatpay import SIGNATURE_TYPE, PlatformKey, load_platform_key

_JSON = "application/json"
# WeChat Pay writes its times in China Standard Time.
_CST = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class SignedDelivery:
    provider: str
    headers: dict[str, str]
    body: bytes

    def as_record(
        self, delivery_id: str, received_at: int, source_ip: str | None = None
    ) -> dict[str, Any]:
        """The `WebhookDelivery` record (contract field names; received_at in epoch ms)."""
        return {
            "delivery_id": delivery_id,
            "provider": self.provider,
            "received_at": received_at,
            "headers": dict(self.headers),
            "body": self.body,
            "source_ip": source_ip,
        }


def _token(seed: str | bytes, length: int) -> str:
    data = seed.encode("utf-8") if isinstance(seed, str) else seed
    return hashlib.sha256(data).hexdigest()[:length]


def _secret_list(secrets: str | Sequence[str]) -> list[str]:
    return [secrets] if isinstance(secrets, str) else list(secrets)


def _timestamped_header(secrets: str | Sequence[str], timestamp: int, body: bytes) -> str:
    # One v1 per active secret, as Stripe does while an endpoint secret is rolled.
    signatures = (
        f"v1={hmac_provider.sign_v1(s.encode('utf-8'), timestamp, body)}"
        for s in _secret_list(secrets)
    )
    return ",".join([f"t={timestamp}", *signatures])


# --- hmac ---------------------------------------------------------------------------


def hmac_body(event: PaymentEvent) -> bytes:
    types = {kind: name for name, kind in hmac_provider.EVENT_TYPES.items()}
    payload = {
        "event_id": event.event_id,
        "type": types[event.kind],
        "order_id": event.order_id,
        "external_txn_id": event.external_txn_id,
        "amount_minor": event.amount_minor,
        "currency": event.currency,
        "merchant_id": event.merchant_id,
        "app_id": event.app_id,
        "occurred_at": event.occurred_at,
        "refund_id": event.refund_id,
    }
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def make_hmac_delivery(
    payload: PaymentEvent | bytes, secrets: str | Sequence[str], *, timestamp: int
) -> SignedDelivery:
    """Sign an event (or raw body bytes) with one or more secrets at `timestamp` (s)."""
    body = payload if isinstance(payload, bytes) else hmac_body(payload)
    header = _timestamped_header(secrets, timestamp, body)
    headers = {"content-type": _JSON, hmac_provider.SIGNATURE_HEADER: header}
    return SignedDelivery("hmac", headers, body)


# --- stripe -------------------------------------------------------------------------


def stripe_event(event: PaymentEvent, *, connect: bool = False) -> dict[str, Any]:
    """A Stripe Event for `event`. `connect` names the merchant as the connected account."""
    created = event.occurred_at // 1000
    metadata = {"order_id": event.order_id}
    if not connect:
        metadata["merchant_id"] = event.merchant_id
    if event.app_id is not None:
        metadata["app_id"] = event.app_id
    charge_id = "ch_" + _token(event.external_txn_id, 24)
    if event.kind is PaymentKind.PAYMENT_SUCCEEDED:
        event_type = "payment_intent.succeeded"
        obj = _payment_intent(event, created, metadata, charge_id, succeeded=True)
    elif event.kind is PaymentKind.PAYMENT_FAILED:
        event_type = "payment_intent.payment_failed"
        obj = _payment_intent(event, created, metadata, charge_id, succeeded=False)
    elif event.kind is PaymentKind.REFUND_SUCCEEDED:
        event_type = "charge.refunded"
        obj = _refunded_charge(event, created, metadata, charge_id)
    else:
        raise ValueError(f"stripe sends no event we map to {event.kind}")
    envelope: dict[str, Any] = {"id": event.event_id, "object": "event"}
    if connect:
        envelope["account"] = event.merchant_id
    envelope |= {
        "api_version": "2024-06-20",
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_" + _token(event.event_id, 14), "idempotency_key": None},
        "type": event_type,
    }
    return envelope


def _payment_intent(
    event: PaymentEvent, created: int, metadata: dict[str, str], charge_id: str, *, succeeded: bool
) -> dict[str, Any]:
    declined = {
        "charge": charge_id,
        "code": "card_declined",
        "decline_code": "generic_decline",
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        "message": "Your card was declined.",
        "type": "card_error",
    }
    return {
        "id": event.external_txn_id,
        "object": "payment_intent",
        "amount": event.amount_minor,
        "amount_capturable": 0,
        "amount_received": event.amount_minor if succeeded else 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "confirmation_method": "automatic",
        "created": created,
        "currency": event.currency.lower(),
        "customer": None,
        "description": None,
        "last_payment_error": None if succeeded else declined,
        "latest_charge": charge_id,
        "livemode": False,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": "pm_" + _token(charge_id, 24),
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": None,
        "status": "succeeded" if succeeded else "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def _refunded_charge(
    event: PaymentEvent, created: int, metadata: dict[str, str], charge_id: str
) -> dict[str, Any]:
    currency = event.currency.lower()
    refunds: list[dict[str, Any]] = []
    if event.refund_id is not None:
        refunds.append(
            {
                "id": event.refund_id,
                "object": "refund",
                "amount": event.amount_minor,
                "charge": charge_id,
                "created": created,
                "currency": currency,
                "metadata": {},
                "payment_intent": event.external_txn_id,
                "reason": "requested_by_customer",
                "status": "succeeded",
            }
        )
    return {
        "id": charge_id,
        "object": "charge",
        "amount": event.amount_minor,
        "amount_captured": event.amount_minor,
        "amount_refunded": event.amount_minor,
        "balance_transaction": "txn_" + _token(charge_id, 24),
        "captured": True,
        "created": created,
        "currency": currency,
        "customer": None,
        "description": None,
        "disputed": False,
        "failure_code": None,
        "livemode": False,
        "metadata": metadata,
        "paid": True,
        "payment_intent": event.external_txn_id,
        "refunded": True,
        "refunds": {
            "object": "list",
            "data": refunds,
            "has_more": False,
            "total_count": len(refunds),
            "url": f"/v1/charges/{charge_id}/refunds",
        },
        "status": "succeeded",
    }


def make_stripe_delivery(
    payload: PaymentEvent | bytes,
    secrets: str | Sequence[str],
    *,
    timestamp: int,
    connect: bool = False,
) -> SignedDelivery:
    """Sign an event (or raw body bytes) the way Stripe signs a webhook."""
    if isinstance(payload, bytes):
        body = payload
    else:
        # Stripe posts its events pretty-printed with two-space indentation.
        body = json.dumps(stripe_event(payload, connect=connect), indent=2).encode("utf-8")
    headers = {
        "content-type": "application/json; charset=utf-8",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        stripe_provider.SIGNATURE_HEADER: _timestamped_header(secrets, timestamp, body),
    }
    return SignedDelivery("stripe", headers, body)


# --- wechatpay ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WechatpayTestKey:
    """A platform key pair: a certificate (hex serial) or a bare `PUB_KEY_ID_` key."""

    serial: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate | None = field(default=None, repr=False)

    def pem(self) -> bytes:
        """What the merchant stores: the certificate, or the public key."""
        if self.certificate is not None:
            return self.certificate.public_bytes(Encoding.PEM)
        return self.private_key.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )

    def platform_key(self) -> PlatformKey:
        return load_platform_key(self.serial, self.pem())


def make_wechatpay_key(*, public_key_id: bool = False) -> WechatpayTestKey:
    """A fresh 2048-bit key. Certificates are valid 2000-2099 so fixed test times work."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    number = x509.random_serial_number()
    if public_key_id:
        return WechatpayTestKey(f"PUB_KEY_ID_{number % 10**28:028d}", private_key)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TopUp Guard test"),
            x509.NameAttribute(NameOID.COMMON_NAME, "wechatpay platform (test)"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(number)
        .not_valid_before(datetime(2000, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2099, 12, 31, tzinfo=UTC))
        .sign(private_key, SHA256())
    )
    return WechatpayTestKey(f"{number:040X}", private_key, certificate)


def _cst(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms // 1000, _CST).isoformat()


_WECHAT_EVENTS = {
    PaymentKind.PAYMENT_SUCCEEDED: ("TRANSACTION.SUCCESS", "SUCCESS", "支付成功"),
    PaymentKind.PAYMENT_FAILED: ("TRANSACTION.FAIL", "PAY_FAIL", "支付失败"),
    PaymentKind.REFUND_SUCCEEDED: ("REFUND.SUCCESS", "SUCCESS", "退款成功"),
    PaymentKind.REFUND_FAILED: ("REFUND.ABNORMAL", "ABNORMAL", "退款异常"),
}


def wechatpay_resource(event: PaymentEvent) -> dict[str, Any]:
    """The decrypted `resource` WeChat Pay would send for `event` (direct merchant)."""
    _, state, description = _WECHAT_EVENTS[event.kind]
    succeeded = state == "SUCCESS"
    if event.kind in (PaymentKind.PAYMENT_SUCCEEDED, PaymentKind.PAYMENT_FAILED):
        if event.app_id is None:
            raise ValueError("a wechatpay transaction always carries an appid")
        resource: dict[str, Any] = {
            "mchid": event.merchant_id,
            "appid": event.app_id,
            "out_trade_no": event.order_id,
            "transaction_id": event.external_txn_id,
            "trade_type": "JSAPI" if succeeded else "PAP",
            "trade_state": state,
            "trade_state_desc": description,
            "bank_type": "OTHERS",
            "attach": "",
            "payer": {"openid": "o" + _token(event.order_id, 27)},
            "amount": {
                "total": event.amount_minor,
                "payer_total": event.amount_minor if succeeded else 0,
                "currency": event.currency,
                "payer_currency": event.currency,
            },
        }
    else:
        if event.refund_id is None:
            raise ValueError("a wechatpay refund always carries a refund_id")
        amount = {
            "total": event.amount_minor,
            "refund": event.amount_minor,
            "payer_total": event.amount_minor,
            "payer_refund": event.amount_minor,
        }
        if event.currency != "CNY":
            # Domestic refund notifications leave the currency out; CNY is implied.
            amount["currency"] = event.currency
        resource = {
            "mchid": event.merchant_id,
            "out_trade_no": event.order_id,
            "transaction_id": event.external_txn_id,
            "out_refund_no": "R" + _token(event.refund_id, 31),
            "refund_id": event.refund_id,
            "refund_status": state,
            "user_received_account": "支付用户零钱",
            "amount": amount,
        }
    if succeeded:
        resource["success_time"] = _cst(event.occurred_at)
    return resource


def encrypt_wechatpay_resource(
    plaintext: bytes, apiv3_key: str, *, original_type: str, associated_data: str | None = None
) -> dict[str, str]:
    """The `resource` object of a notification: AEAD_AES_256_GCM under the API v3 key."""
    associated = original_type if associated_data is None else associated_data
    # Derived from the content: equal plaintexts share a nonce, different ones never do.
    nonce = _token(plaintext + associated.encode("utf-8"), 12)
    ciphertext = AESGCM(apiv3_key.encode("utf-8")).encrypt(
        nonce.encode("utf-8"), plaintext, associated.encode("utf-8")
    )
    return {
        "original_type": original_type,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
        "associated_data": associated,
        "nonce": nonce,
    }


def wechatpay_notification(event: PaymentEvent, apiv3_key: str) -> bytes:
    """The notification body for `event`: compact UTF-8 JSON, as WeChat Pay posts it."""
    event_type, _, summary = _WECHAT_EVENTS[event.kind]
    original_type = "transaction" if event_type.startswith("TRANSACTION.") else "refund"
    plaintext = json.dumps(
        wechatpay_resource(event), ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")
    notification = {
        "id": event.event_id,
        "create_time": _cst(event.occurred_at),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": encrypt_wechatpay_resource(plaintext, apiv3_key, original_type=original_type),
    }
    return json.dumps(notification, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def make_wechatpay_delivery(
    payload: PaymentEvent | bytes,
    key: WechatpayTestKey,
    apiv3_key: str | None = None,
    *,
    timestamp: int,
    nonce: str | None = None,
) -> SignedDelivery:
    """Sign a notification for an event (needs `apiv3_key`) or for raw body bytes."""
    if isinstance(payload, bytes):
        body = payload
    elif apiv3_key is None:
        raise ValueError("encrypting a notification needs the API v3 key")
    else:
        body = wechatpay_notification(payload, apiv3_key)
    nonce = nonce or _token(b"%d." % timestamp + body, 32).upper()
    message = b"%d\n%s\n%s\n" % (timestamp, nonce.encode("ascii"), body)
    signature = key.private_key.sign(message, PKCS1v15(), SHA256())
    headers = {
        "content-type": _JSON,
        "request-id": _token(b"request." + message, 32),
        "wechatpay-nonce": nonce,
        "wechatpay-serial": key.serial,
        "wechatpay-signature": base64.b64encode(signature).decode("ascii"),
        "wechatpay-signature-type": SIGNATURE_TYPE,
        "wechatpay-timestamp": str(timestamp),
    }
    return SignedDelivery("wechatpay", headers, body)
