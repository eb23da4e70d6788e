"""The Stripe adapter, checked against stripe-python's own signing and verification."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.providers import Rejection, StripeAdapter
from streams.providers.testing import SignedDelivery, make_stripe_delivery, stripe_event

SECRET = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc"
OLD_SECRET = "whsec_test_rolled_0aQ91ZxYv2"
STRANGER = "whsec_test_someone_else_77"
SECRETS = (SECRET, OLD_SECRET, STRANGER)

# Realistic events as Stripe posts them (API 2024-06-20 unless noted), trimmed of nothing
# the adapter reads and keeping the noise it must ignore.
PAYMENT_INTENT_SUCCEEDED = """{
  "id": "evt_3PZkYaLkdIwHu7ix0Lk8mTzd",
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1720000000,
  "data": {
    "object": {
      "id": "pi_3PZkYaLkdIwHu7ix0uvX1b2C",
      "object": "payment_intent",
      "amount": 2000,
      "amount_capturable": 0,
      "amount_details": {"tip": {}},
      "amount_received": 2000,
      "application": null,
      "application_fee_amount": null,
      "automatic_payment_methods": {"allow_redirects": "always", "enabled": true},
      "canceled_at": null,
      "cancellation_reason": null,
      "capture_method": "automatic_async",
      "client_secret": "pi_3PZkYaLkdIwHu7ix0uvX1b2C_secret_fake",
      "confirmation_method": "automatic",
      "created": 1719999990,
      "currency": "usd",
      "customer": "cus_QQhAjpDf6ZrE1f",
      "description": "Cloud credit top-up",
      "invoice": null,
      "last_payment_error": null,
      "latest_charge": "ch_3PZkYaLkdIwHu7ix0qSkhGxW",
      "livemode": false,
      "metadata": {"order_id": "order-1001", "merchant_id": "merchant-us-1", "app_id": "console"},
      "next_action": null,
      "on_behalf_of": null,
      "payment_method": "pm_1PZkYZLkdIwHu7ixVY2bBTLj",
      "payment_method_configuration_details": {"id": "pmc_1OmxGRLkdIwHu7ixa2", "parent": null},
      "payment_method_options": {
        "card": {
          "installments": null,
          "mandate_options": null,
          "network": null,
          "request_three_d_secure": "automatic"
        }
      },
      "payment_method_types": ["card"],
      "processing": null,
      "receipt_email": "buyer@example.com",
      "review": null,
      "setup_future_usage": null,
      "shipping": null,
      "source": null,
      "statement_descriptor": null,
      "statement_descriptor_suffix": null,
      "status": "succeeded",
      "transfer_data": null,
      "transfer_group": null
    }
  },
  "livemode": false,
  "pending_webhooks": 2,
  "request": {"id": "req_Xb8WbvyuRkbGJk", "idempotency_key": "6b0a2d9e-5f8e-4c41-9d0e-0e0c2c6f"},
  "type": "payment_intent.succeeded"
}
"""

# A Connect event: the merchant is the connected account, not a metadata entry.
PAYMENT_INTENT_FAILED = """{
  "id": "evt_3PaFailLkdIwHu7ix1Qw2Er3T",
  "object": "event",
  "account": "acct_1Nv0FGQ9RKHgCVdK",
  "api_version": "2024-06-20",
  "created": 1720000300,
  "data": {
    "object": {
      "id": "pi_3PaFailLkdIwHu7ix1a2b3c4d",
      "object": "payment_intent",
      "amount": 4999,
      "amount_capturable": 0,
      "amount_details": {"tip": {}},
      "amount_received": 0,
      "application": "ca_Fake1234567890",
      "application_fee_amount": 150,
      "automatic_payment_methods": null,
      "canceled_at": null,
      "cancellation_reason": null,
      "capture_method": "automatic",
      "confirmation_method": "automatic",
      "created": 1720000290,
      "currency": "eur",
      "customer": null,
      "description": null,
      "invoice": null,
      "last_payment_error": {
        "charge": "ch_3PaFailLkdIwHu7ix1zzzzzz",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "doc_url": "https://stripe.com/docs/error-codes/card-declined",
        "message": "Your card has insufficient funds.",
        "payment_method": {
          "id": "pm_1PaFailLkdIwHu7ixCard",
          "object": "payment_method",
          "billing_details": {"address": {"country": "DE"}, "email": null, "name": null},
          "card": {"brand": "visa", "country": "DE", "exp_month": 12, "exp_year": 2030,
                   "funding": "credit", "last4": "9995"},
          "created": 1720000289,
          "customer": null,
          "livemode": false,
          "metadata": {},
          "type": "card"
        },
        "type": "card_error"
      },
      "latest_charge": "ch_3PaFailLkdIwHu7ix1zzzzzz",
      "livemode": false,
      "metadata": {"order_id": "order-2002"},
      "next_action": null,
      "on_behalf_of": null,
      "payment_method": null,
      "payment_method_types": ["card"],
      "processing": null,
      "receipt_email": null,
      "review": null,
      "setup_future_usage": null,
      "shipping": null,
      "source": null,
      "statement_descriptor": null,
      "statement_descriptor_suffix": null,
      "status": "requires_payment_method",
      "transfer_data": null,
      "transfer_group": null
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": "req_9uQ2uVtXHRkzTl", "idempotency_key": null},
  "type": "payment_intent.payment_failed"
}
"""

# Current API versions no longer expand `charge.refunds`: the charge is the refund.
CHARGE_REFUNDED = """{
  "id": "evt_3PbRefLkdIwHu7ix2Ab9Zx1Q",
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1720086400,
  "data": {
    "object": {
      "id": "ch_3PZkYaLkdIwHu7ix0qSkhGxW",
      "object": "charge",
      "amount": 2000,
      "amount_captured": 2000,
      "amount_refunded": 2000,
      "application": null,
      "application_fee": null,
      "application_fee_amount": null,
      "balance_transaction": "txn_3PZkYaLkdIwHu7ix0Tq8LmN2",
      "billing_details": {
        "address": {"city": null, "country": "US", "line1": null, "line2": null,
                    "postal_code": "94107", "state": null},
        "email": "buyer@example.com",
        "name": "Jenny Rosen",
        "phone": null
      },
      "calculated_statement_descriptor": "TOPUP GUARD",
      "captured": true,
      "created": 1719999991,
      "currency": "usd",
      "customer": "cus_QQhAjpDf6ZrE1f",
      "description": "Cloud credit top-up",
      "destination": null,
      "dispute": null,
      "disputed": false,
      "failure_balance_transaction": null,
      "failure_code": null,
      "failure_message": null,
      "fraud_details": {},
      "invoice": null,
      "livemode": false,
      "metadata": {"order_id": "order-1001", "merchant_id": "merchant-us-1", "app_id": "console"},
      "on_behalf_of": null,
      "order": null,
      "outcome": {
        "network_status": "approved_by_network",
        "reason": null,
        "risk_level": "normal",
        "risk_score": 32,
        "seller_message": "Payment complete.",
        "type": "authorized"
      },
      "paid": true,
      "payment_intent": "pi_3PZkYaLkdIwHu7ix0uvX1b2C",
      "payment_method": "pm_1PZkYZLkdIwHu7ixVY2bBTLj",
      "payment_method_details": {
        "card": {"brand": "visa", "country": "US", "exp_month": 8, "exp_year": 2027,
                 "funding": "credit", "last4": "4242", "network": "visa"},
        "type": "card"
      },
      "radar_options": {},
      "receipt_email": "buyer@example.com",
      "receipt_number": null,
      "receipt_url": "https://pay.stripe.com/receipts/payment/CAcaFwoVYWNjdF9fake",
      "refunded": true,
      "review": null,
      "shipping": null,
      "source": null,
      "source_transfer": null,
      "statement_descriptor": null,
      "statement_descriptor_suffix": null,
      "status": "succeeded",
      "transfer_data": null,
      "transfer_group": null
    },
    "previous_attributes": {"amount_refunded": 0, "refunded": false}
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": "req_4wXgq1n2VbGq9H", "idempotency_key": "refund-order-1001"},
  "type": "charge.refunded"
}
"""

# Accounts pinned to an API version before 2022-11-15 get the refunds list, newest first.
CHARGE_PARTIALLY_REFUNDED_LEGACY = """{
  "id": "evt_1MqLegacyRefund0002",
  "object": "event",
  "api_version": "2020-08-27",
  "created": 1720090000,
  "data": {
    "object": {
      "id": "ch_1MqLegacyCharge",
      "object": "charge",
      "amount": 5000,
      "amount_captured": 5000,
      "amount_refunded": 1500,
      "captured": true,
      "created": 1720000000,
      "currency": "gbp",
      "metadata": {"order_id": "order-3003", "merchant_id": "merchant-uk-2"},
      "paid": true,
      "payment_intent": "pi_1MqLegacyIntent",
      "refunded": false,
      "refunds": {
        "object": "list",
        "data": [
          {"id": "re_1MqLegacySecond", "object": "refund", "amount": 500,
           "charge": "ch_1MqLegacyCharge", "created": 1720090000, "currency": "gbp",
           "metadata": {}, "payment_intent": "pi_1MqLegacyIntent", "reason": null,
           "status": "succeeded"},
          {"id": "re_1MqLegacyFirst", "object": "refund", "amount": 1000,
           "charge": "ch_1MqLegacyCharge", "created": 1720050000, "currency": "gbp",
           "metadata": {}, "payment_intent": "pi_1MqLegacyIntent", "reason": null,
           "status": "succeeded"}
        ],
        "has_more": false,
        "total_count": 2,
        "url": "/v1/charges/ch_1MqLegacyCharge/refunds"
      },
      "status": "succeeded"
    },
    "previous_attributes": {"amount_refunded": 1000}
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": "req_legacy", "idempotency_key": null},
  "type": "charge.refunded"
}
"""

CUSTOMER_CREATED = """{
  "id": "evt_1NCustomerCreated",
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1720000000,
  "data": {"object": {"id": "cus_QQhAjpDf6ZrE1f", "object": "customer", "metadata": {}}},
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": "customer.created"
}
"""


def now_s() -> int:
    return int(time.time())


def sdk_header(body: bytes, secret: str, timestamp: int) -> str:
    """stripe-python's own test-header generator (the header Stripe would send)."""
    return stripe.WebhookSignature.generate_signature_header(
        body.decode("utf-8"), secret, timestamp=timestamp
    )


def sdk_accepts(body: bytes, header: str, secret: str, tolerance: int = 300) -> bool:
    try:
        return stripe.WebhookSignature.verify_header(body, header, secret, tolerance)
    except stripe.SignatureVerificationError:
        return False


def we_accept(body: bytes, header: str, secrets: list[str], received_ms: int) -> bool:
    try:
        StripeAdapter(secrets).parse({"stripe-signature": header}, body, received_ms)
    except Rejection as exc:
        assert all(s not in str(exc) for s in SECRETS)
        return False
    return True


def rejection(
    adapter: StripeAdapter, headers: dict[str, str], body: bytes, at_ms: int
) -> Rejection:
    with pytest.raises(Rejection) as caught:
        adapter.parse(headers, body, at_ms)
    text = f"{caught.value} {caught.value!r}"
    assert all(secret not in text for secret in SECRETS)
    parts = headers.get("stripe-signature", "").split(",")
    signatures = [part[3:] for part in parts if part.startswith(("v1=", "v0=")) and len(part) > 10]
    assert all(signature not in text for signature in signatures)
    return caught.value


def parse_fixture(fixture: str, at: int = 1_720_000_000) -> PaymentEvent | None:
    body = fixture.encode()
    header = sdk_header(body, SECRET, at)
    return StripeAdapter([SECRET]).parse({"stripe-signature": header}, body, at * 1000)


# --- realistic events ----------------------------------------------------------------


def test_payment_intent_succeeded() -> None:
    assert parse_fixture(PAYMENT_INTENT_SUCCEEDED) == PaymentEvent(
        provider="stripe",
        event_id="evt_3PZkYaLkdIwHu7ix0Lk8mTzd",
        external_txn_id="pi_3PZkYaLkdIwHu7ix0uvX1b2C",
        order_id="order-1001",
        kind=PaymentKind.PAYMENT_SUCCEEDED,
        amount_minor=2000,
        currency="USD",
        merchant_id="merchant-us-1",
        app_id="console",
        occurred_at=1_720_000_000_000,
    )


def test_payment_intent_failed_on_a_connected_account() -> None:
    assert parse_fixture(PAYMENT_INTENT_FAILED) == PaymentEvent(
        provider="stripe",
        event_id="evt_3PaFailLkdIwHu7ix1Qw2Er3T",
        external_txn_id="pi_3PaFailLkdIwHu7ix1a2b3c4d",
        order_id="order-2002",
        kind=PaymentKind.PAYMENT_FAILED,
        amount_minor=4999,
        currency="EUR",
        merchant_id="acct_1Nv0FGQ9RKHgCVdK",
        app_id=None,
        occurred_at=1_720_000_300_000,
    )


def test_charge_refunded_without_expanded_refunds() -> None:
    assert parse_fixture(CHARGE_REFUNDED) == PaymentEvent(
        provider="stripe",
        event_id="evt_3PbRefLkdIwHu7ix2Ab9Zx1Q",
        external_txn_id="pi_3PZkYaLkdIwHu7ix0uvX1b2C",
        order_id="order-1001",
        kind=PaymentKind.REFUND_SUCCEEDED,
        amount_minor=2000,
        currency="USD",
        merchant_id="merchant-us-1",
        app_id="console",
        occurred_at=1_720_086_400_000,
        refund_id="ch_3PZkYaLkdIwHu7ix0qSkhGxW",
    )


def test_charge_refunded_takes_the_latest_refund_and_its_own_amount() -> None:
    parsed = parse_fixture(CHARGE_PARTIALLY_REFUNDED_LEGACY)
    assert parsed is not None
    assert parsed.refund_id == "re_1MqLegacySecond"
    assert (parsed.amount_minor, parsed.currency) == (500, "GBP")


def test_other_event_types_are_verified_then_ignored() -> None:
    assert parse_fixture(CUSTOMER_CREATED) is None
    body = CUSTOMER_CREATED.encode()
    header = sdk_header(body, STRANGER, 1_720_000_000)
    caught = rejection(
        StripeAdapter([SECRET]), {"stripe-signature": header}, body, 1_720_000_000_000
    )
    assert caught.kind == "SIGNATURE_INVALID"


def test_the_sdk_reads_our_fixtures_as_the_same_event() -> None:
    body = PAYMENT_INTENT_SUCCEEDED.encode()
    t = now_s()
    sdk_event = stripe.Webhook.construct_event(body, sdk_header(body, SECRET, t), SECRET)
    assert sdk_event.type == "payment_intent.succeeded"
    assert sdk_event.data.object.metadata["order_id"] == "order-1001"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("data", "object", "metadata", "order_id"), None, "order_id"),
        (("data", "object", "metadata"), None, "metadata"),
        (("data", "object", "object"), "charge", "data.object.object"),
        (("data", "object", "amount"), 20.0, "amount"),
        (("data", "object", "currency"), "usdollar", "currency"),
        (("data", "object", "id"), "", "data.object.id"),
        (("created",), "yesterday", "created"),
        (("object",), "v2.core.event", "event.object"),
        (("data",), [], "data"),
    ],
)
def test_bad_fields_are_bad_payload_naming_the_field(
    path: tuple[str, ...], value: object, field: str
) -> None:
    event = json.loads(PAYMENT_INTENT_FAILED)
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    body = json.dumps(event).encode()
    t = 1_720_000_000
    headers = {"stripe-signature": sdk_header(body, SECRET, t)}
    caught = rejection(StripeAdapter([SECRET]), headers, body, t * 1000)
    assert caught.kind == "BAD_PAYLOAD"
    assert field in caught.message


def test_platform_event_without_merchant_metadata_is_bad_payload() -> None:
    event = json.loads(PAYMENT_INTENT_FAILED)
    del event["account"]
    body = json.dumps(event).encode()
    headers = {"stripe-signature": sdk_header(body, SECRET, 1_720_000_000)}
    caught = rejection(StripeAdapter([SECRET]), headers, body, 1_720_000_000_000)
    assert caught.kind == "BAD_PAYLOAD" and "merchant_id" in caught.message


# --- agreement with stripe-python ----------------------------------------------------


def _flip_last_hex(header: str) -> str:
    last = header[-1]
    return header[:-1] + ("0" if last != "0" else "1")


def agreement_cases() -> list[tuple[str, bytes, str, str, list[str], bool]]:
    """(name, body, header, sdk secret, our secrets, expected verdict)."""
    body = PAYMENT_INTENT_SUCCEEDED.encode()
    t = now_s()
    valid = sdk_header(body, SECRET, t)
    old_only = sdk_header(body, OLD_SECRET, t)
    # Mid-roll, Stripe signs with both the rolled and the new secret.
    both_v1 = f"{old_only},v1={valid.split('v1=')[1]}"
    return [
        ("valid", body, valid, SECRET, [SECRET], True),
        ("tampered body", body.replace(b"2000", b"2001", 1), valid, SECRET, [SECRET], False),
        ("tampered signature", body, _flip_last_hex(valid), SECRET, [SECRET], False),
        ("wrong secret", body, old_only, SECRET, [SECRET], False),
        ("stale", body, sdk_header(body, SECRET, t - 400), SECRET, [SECRET], False),
        ("two v1, new secret", body, both_v1, SECRET, [SECRET], True),
        ("two v1, rolled secret", body, both_v1, OLD_SECRET, [OLD_SECRET], True),
        ("two v1, neither", body, both_v1, STRANGER, [STRANGER], False),
        ("v0 alongside v1", body, f"{valid},v0={'ab' * 32}", SECRET, [SECRET], True),
        ("v0 only", body, f"t={t},v0={valid.split('v1=')[1]}", SECRET, [SECRET], False),
    ]


@pytest.mark.parametrize("name", [case[0] for case in agreement_cases()])
def test_verification_agrees_with_the_sdk(name: str) -> None:
    # Built when the test runs: signatures made at collection would be stale by then.
    _, body, header, sdk_secret, ours, expected = next(
        case for case in agreement_cases() if case[0] == name
    )
    assert sdk_accepts(body, header, sdk_secret) is expected
    assert we_accept(body, header, ours, int(time.time() * 1000)) is expected


@pytest.mark.parametrize("signer", [SECRET, OLD_SECRET])
def test_two_active_secrets_on_our_side(signer: str) -> None:
    body = PAYMENT_INTENT_SUCCEEDED.encode()
    header = sdk_header(body, signer, now_s())
    received = int(time.time() * 1000)
    assert sdk_accepts(body, header, signer)
    assert we_accept(body, header, [SECRET, OLD_SECRET], received)
    assert not we_accept(body, header, [STRANGER], received)


def test_future_timestamps_are_stale_for_us_but_not_for_the_sdk() -> None:
    # stripe-python only bounds the past; a far-future timestamp would stay replayable.
    body = PAYMENT_INTENT_SUCCEEDED.encode()
    header = sdk_header(body, SECRET, now_s() + 3_600)
    assert sdk_accepts(body, header, SECRET)
    headers = {"stripe-signature": header}
    caught = rejection(StripeAdapter([SECRET]), headers, body, int(time.time() * 1000))
    assert caught.kind == "STALE_SIGNATURE"


def test_stale_rejection_kind() -> None:
    body = PAYMENT_INTENT_SUCCEEDED.encode()
    headers = {"stripe-signature": sdk_header(body, SECRET, now_s() - 301)}
    caught = rejection(StripeAdapter([SECRET]), headers, body, int(time.time() * 1000))
    assert caught.kind == "STALE_SIGNATURE"


# --- the builder ---------------------------------------------------------------------


def built_event(kind: PaymentKind, **changes: Any) -> PaymentEvent:
    values: dict[str, Any] = {
        "provider": "stripe",
        "event_id": "evt_built_1",
        "external_txn_id": "pi_built_1",
        "order_id": "order-9",
        "kind": kind,
        "amount_minor": 990,
        "currency": "JPY",
        "merchant_id": "merchant-jp",
        "app_id": "mobile",
        "occurred_at": 1_720_000_000_000,
        "refund_id": "re_built_1" if kind is PaymentKind.REFUND_SUCCEEDED else None,
    }
    return PaymentEvent(**(values | changes))


BUILDABLE = [
    PaymentKind.PAYMENT_SUCCEEDED,
    PaymentKind.PAYMENT_FAILED,
    PaymentKind.REFUND_SUCCEEDED,
]


@pytest.mark.parametrize("connect", [False, True])
@pytest.mark.parametrize("kind", BUILDABLE)
def test_builder_round_trips_and_satisfies_the_sdk(kind: PaymentKind, connect: bool) -> None:
    event = built_event(kind)
    t = now_s()
    delivery = make_stripe_delivery(event, SECRET, timestamp=t, connect=connect)
    assert all(name == name.lower() for name in delivery.headers)
    header = delivery.headers["stripe-signature"]
    assert sdk_accepts(delivery.body, header, SECRET)
    sdk_event = stripe.Webhook.construct_event(delivery.body, header, SECRET)
    assert sdk_event.id == event.event_id
    parsed = StripeAdapter([SECRET]).parse(delivery.headers, delivery.body, t * 1000)
    assert parsed == event


def test_builder_has_no_stripe_event_for_a_failed_refund() -> None:
    with pytest.raises(ValueError):
        stripe_event(built_event(PaymentKind.REFUND_FAILED, refund_id="re_1"))


def test_builder_rotation_header_satisfies_the_sdk_for_each_secret() -> None:
    delivery = make_stripe_delivery(
        built_event(PaymentKind.PAYMENT_SUCCEEDED), [OLD_SECRET, SECRET], timestamp=now_s()
    )
    for secret in (OLD_SECRET, SECRET):
        assert sdk_accepts(delivery.body, delivery.headers["stripe-signature"], secret)


# --- any input, and secrets ----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


FIXTURES = [PAYMENT_INTENT_SUCCEEDED, PAYMENT_INTENT_FAILED, CHARGE_PARTIALLY_REFUNDED_LEGACY]


@given(
    headers=st.dictionaries(st.sampled_from(["stripe-signature", "x"]) | st.text(), st.text()),
    body=st.binary(),
)
def test_random_input_only_ever_rejects(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(Rejection):
        StripeAdapter([SECRET]).parse(headers, body, 1_720_000_000_000)


@given(data=st.data(), fixture=st.sampled_from(FIXTURES))
def test_signed_mutated_events_never_raise_anything_else(data: st.DataObject, fixture: str) -> None:
    event = json.loads(fixture)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(event)))
        target = event
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = data.draw(json_values)
        if not _paths(event):
            break
    body = json.dumps(event).encode()
    t = 1_720_000_000
    try:
        result = StripeAdapter([SECRET]).parse(
            {"stripe-signature": sdk_header(body, SECRET, t)}, body, t * 1000
        )
    except Rejection as exc:
        assert exc.kind == "BAD_PAYLOAD"
    else:
        assert result is None or isinstance(result, PaymentEvent)


def test_no_secret_in_repr() -> None:
    adapter = StripeAdapter(list(SECRETS))
    assert all(secret not in repr(adapter) and secret not in str(adapter) for secret in SECRETS)


def test_unsigned_delivery_is_signature_invalid() -> None:
    delivery = SignedDelivery("stripe", {}, PAYMENT_INTENT_SUCCEEDED.encode())
    caught = rejection(StripeAdapter([SECRET]), delivery.headers, delivery.body, 0)
    assert caught.kind == "SIGNATURE_INVALID"
