"""Stripe webhooks: the `stripe-signature` header and Event JSON exactly as Stripe sends them.

Stripe signs "<t>.<body>" with HMAC-SHA256 under the endpoint secret (`whsec_...`, used
whole as the key) and sends `t=..,v1=..[,v0=..]`; during a secret roll it sends one v1 per
active secret. Unlike stripe-python we also refuse timestamps from the future.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.providers.base import (
    DEFAULT_TOLERANCE_S,
    Fields,
    RejectionKind,
    SignedWebhookAdapter,
    load_json_object,
    reject,
    require_header,
    secret_keys,
)
from streams.providers.hmac_provider import verify_timestamped_hmac

SIGNATURE_HEADER = "stripe-signature"

_PAYMENT_INTENT_KINDS = {
    "payment_intent.succeeded": PaymentKind.PAYMENT_SUCCEEDED,
    "payment_intent.payment_failed": PaymentKind.PAYMENT_FAILED,
}
_CHARGE_REFUNDED = "charge.refunded"


class StripeAdapter(SignedWebhookAdapter):
    name = "stripe"

    def __init__(self, secrets: Sequence[str], tolerance_s: int = DEFAULT_TOLERANCE_S) -> None:
        super().__init__(tolerance_s)
        self._keys = secret_keys(secrets, self.name)

    def _verify(self, headers: Mapping[str, str], body: bytes, received_at_ms: int) -> None:
        header = require_header(headers, SIGNATURE_HEADER)
        verify_timestamped_hmac(header, body, self._keys, received_at_ms, self.tolerance_s)

    def _normalise(self, body: bytes) -> PaymentEvent | None:
        event = load_json_object(body, "event")
        if event.text("object") != "event":
            reject(RejectionKind.BAD_PAYLOAD, "field 'event.object' must be 'event'")
        event_type = event.text("type")
        if event_type in _PAYMENT_INTENT_KINDS:
            return self._payment_intent(event, _PAYMENT_INTENT_KINDS[event_type])
        if event_type == _CHARGE_REFUNDED:
            return self._charge_refunded(event)
        return None

    def _payment_intent(self, event: Fields, kind: PaymentKind) -> PaymentEvent:
        intent = _data_object(event, "payment_intent")
        # A failed intent has amount_received 0; the attempted amount is what we compare.
        received = intent.long("amount_received") if intent.has("amount_received") else 0
        return self._event(
            event,
            intent,
            kind=kind,
            external_txn_id=intent.text("id"),
            amount_minor=received or intent.long("amount"),
            refund_id=None,
        )

    def _charge_refunded(self, event: Fields) -> PaymentEvent:
        charge = _data_object(event, "charge")
        refunds = charge.obj("refunds").objects("data") if charge.has("refunds") else []
        if refunds:
            # Stripe lists newest first: this event is about the latest refund, and its
            # own amount (not the charge's cumulative amount_refunded) is what moved.
            refund_id, amount = refunds[0].text("id"), refunds[0].long("amount")
        else:
            # Since API 2022-11-15 `refunds` is not expanded; a full refund is the charge.
            refund_id, amount = charge.text("id"), charge.long("amount_refunded")
        return self._event(
            event,
            charge,
            kind=PaymentKind.REFUND_SUCCEEDED,
            external_txn_id=charge.text("payment_intent"),
            amount_minor=amount,
            refund_id=refund_id,
        )

    def _event(
        self,
        event: Fields,
        obj: Fields,
        *,
        kind: PaymentKind,
        external_txn_id: str,
        amount_minor: int,
        refund_id: str | None,
    ) -> PaymentEvent:
        metadata = obj.obj("metadata")
        # Connect events name the connected account; platform events carry it in metadata.
        merchant_id = event.opt_text("account") or metadata.text("merchant_id")
        return PaymentEvent(
            provider=self.name,
            event_id=event.text("id"),
            external_txn_id=external_txn_id,
            order_id=metadata.text("order_id"),
            kind=kind,
            amount_minor=amount_minor,
            currency=obj.currency("currency"),
            merchant_id=merchant_id,
            app_id=metadata.opt_text("app_id"),
            occurred_at=event.epoch_s_as_ms("created"),
            refund_id=refund_id,
        )


def _data_object(event: Fields, expected: str) -> Fields:
    obj = event.obj("data").obj("object")
    if obj.text("object") != expected:
        reject(RejectionKind.BAD_PAYLOAD, f"field 'event.data.object.object' must be {expected!r}")
    return obj
