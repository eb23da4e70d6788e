"""The `hmac` adapter, the adapter registry, and the PaymentEvent wire form."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.providers import (
    HmacAdapter,
    Rejection,
    StripeAdapter,
    adapter_for,
    build_adapters,
)
from streams.providers.testing import SignedDelivery, hmac_body, make_hmac_delivery

SECRET = "hmac-secret-current-7f3a9c"
OLD_SECRET = "hmac-secret-previous-1b2d4e"
SECRETS = (SECRET, OLD_SECRET, "hmac-secret-unrelated-9e8d7c")
T = 1_700_000_000
RECEIVED_MS = T * 1000 + 250


def event(kind: PaymentKind = PaymentKind.PAYMENT_SUCCEEDED, **changes: Any) -> PaymentEvent:
    refund = kind in (PaymentKind.REFUND_SUCCEEDED, PaymentKind.REFUND_FAILED)
    values: dict[str, Any] = {
        "provider": "hmac",
        "event_id": "evt-0001",
        "external_txn_id": "txn-42",
        "order_id": "order-7",
        "kind": kind,
        "amount_minor": 12_345,
        "currency": "USD",
        "merchant_id": "merchant-1",
        "app_id": "app-9",
        "occurred_at": T * 1000 - 1_500,
        "refund_id": "rf-3" if refund else None,
    }
    return PaymentEvent(**(values | changes))


def rejection(adapter: Any, delivery: SignedDelivery, received_ms: int = RECEIVED_MS) -> Rejection:
    """Parse expecting a Rejection whose text leaks no secret and no signature."""
    with pytest.raises(Rejection) as caught:
        adapter.parse(delivery.headers, delivery.body, received_ms)
    text = f"{caught.value} {caught.value!r}"
    for secret in SECRETS:
        assert secret not in text
    for header in delivery.headers.values():
        for part in header.split(","):
            if part.startswith("v1=") and len(part) > 10:
                assert part[3:] not in text
    return caught.value


def body_dict(ev: PaymentEvent) -> dict[str, Any]:
    return json.loads(hmac_body(ev))


def signed(body: dict[str, Any] | bytes, timestamp: int = T) -> SignedDelivery:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return make_hmac_delivery(raw, SECRET, timestamp=timestamp)


@pytest.fixture
def adapter() -> HmacAdapter:
    return HmacAdapter([SECRET])


@pytest.mark.parametrize("kind", list(PaymentKind))
def test_round_trip_for_every_kind(adapter: HmacAdapter, kind: PaymentKind) -> None:
    ev = event(kind)
    delivery = make_hmac_delivery(ev, SECRET, timestamp=T)
    assert adapter.parse(delivery.headers, delivery.body, RECEIVED_MS) == ev


def test_delivery_shape_matches_the_contract() -> None:
    delivery = make_hmac_delivery(event(), SECRET, timestamp=T)
    assert all(name == name.lower() for name in delivery.headers)
    header = delivery.headers["x-topup-signature"]
    assert header.startswith(f"t={T},v1=") and len(header.split("v1=")[1]) == 64
    record = delivery.as_record("d-1", RECEIVED_MS, "10.0.0.1")
    assert record["body"] == delivery.body and record["provider"] == "hmac"
    assert set(record) == {"delivery_id", "provider", "received_at", "headers", "body", "source_ip"}


def test_lower_case_currency_is_normalised(adapter: HmacAdapter) -> None:
    body = body_dict(event()) | {"currency": "eur"}
    parsed = adapter.parse(signed(body).headers, signed(body).body, RECEIVED_MS)
    assert parsed is not None and parsed.currency == "EUR"


def test_unknown_type_is_verified_then_ignored(adapter: HmacAdapter) -> None:
    delivery = signed(body_dict(event()) | {"type": "payment.pending"})
    assert adapter.parse(delivery.headers, delivery.body, RECEIVED_MS) is None
    forged = make_hmac_delivery(delivery.body, "not-the-secret", timestamp=T)
    assert rejection(adapter, forged).kind == "SIGNATURE_INVALID"


# --- signatures ----------------------------------------------------------------------


def test_either_active_secret_matches() -> None:
    rotating = HmacAdapter([SECRET, OLD_SECRET])
    for secret in (SECRET, OLD_SECRET):
        delivery = make_hmac_delivery(event(), secret, timestamp=T)
        assert rotating.parse(delivery.headers, delivery.body, RECEIVED_MS) is not None
    stranger = make_hmac_delivery(event(), SECRETS[2], timestamp=T)
    assert rejection(rotating, stranger).kind == "SIGNATURE_INVALID"


def test_any_v1_entry_may_match(adapter: HmacAdapter) -> None:
    # A sender mid-rotation signs with both; we hold only the new secret.
    delivery = make_hmac_delivery(event(), [OLD_SECRET, SECRET], timestamp=T)
    assert delivery.headers["x-topup-signature"].count("v1=") == 2
    assert adapter.parse(delivery.headers, delivery.body, RECEIVED_MS) is not None


@pytest.mark.parametrize(
    ("offset_s", "ok"),
    [(-300, True), (300, True), (-301, False), (301, False), (-86_400, False), (86_400, False)],
)
def test_signature_age_both_directions(adapter: HmacAdapter, offset_s: int, ok: bool) -> None:
    delivery = make_hmac_delivery(event(), SECRET, timestamp=T + offset_s)
    if ok:
        assert adapter.parse(delivery.headers, delivery.body, T * 1000) is not None
    else:
        assert rejection(adapter, delivery, T * 1000).kind == "STALE_SIGNATURE"


def test_forged_and_stale_is_signature_invalid(adapter: HmacAdapter) -> None:
    delivery = make_hmac_delivery(event(), "wrong-secret", timestamp=T - 10_000)
    assert rejection(adapter, delivery).kind == "SIGNATURE_INVALID"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "t=abc,v1=00",
        "v1=" + "0" * 64,
        f"t={T}",
        f"t={T},t={T},v1=" + "0" * 64,
        f"t=-{T},v1=" + "0" * 64,
        "t=\u0661\u0662\u0663,v1=" + "0" * 64,
        f"t={T}, v1=" + "0" * 64,
        f"t={T},v1=\u00e9" + "0" * 63,
        f"t={'9' * 40},v1=" + "0" * 64,
    ],
)
def test_malformed_headers_are_signature_invalid(adapter: HmacAdapter, header: str | None) -> None:
    good = make_hmac_delivery(event(), SECRET, timestamp=T)
    headers = {} if header is None else {"x-topup-signature": header}
    delivery = SignedDelivery("hmac", headers, good.body)
    assert rejection(adapter, delivery).kind == "SIGNATURE_INVALID"


def test_header_names_are_matched_case_insensitively(adapter: HmacAdapter) -> None:
    delivery = make_hmac_delivery(event(), SECRET, timestamp=T)
    headers = {"X-TopUp-Signature": delivery.headers["x-topup-signature"]}
    assert adapter.parse(headers, delivery.body, RECEIVED_MS) is not None


@given(
    region=st.sampled_from(["body", "timestamp", "signature"]),
    position=st.integers(min_value=0),
    mask=st.integers(min_value=1, max_value=255),
)
def test_flipping_any_single_byte_rejects(region: str, position: int, mask: int) -> None:
    adapter = HmacAdapter([SECRET])
    delivery = make_hmac_delivery(event(), SECRET, timestamp=T)
    body = bytearray(delivery.body)
    header = bytearray(delivery.headers["x-topup-signature"].encode("ascii"))
    comma = header.index(b",")
    target, start, end = {
        "body": (body, 0, len(body)),
        "timestamp": (header, 2, comma),
        "signature": (header, comma + 4, len(header)),
    }[region]
    target[start + position % (end - start)] ^= mask
    # latin-1 maps every byte to one character, as a lenient HTTP stack would.
    tampered = SignedDelivery("hmac", {"x-topup-signature": header.decode("latin-1")}, bytes(body))
    assert rejection(adapter, tampered).kind == "SIGNATURE_INVALID"


# --- payload validation --------------------------------------------------------------

_DROP = object()

BAD_FIELDS = [
    ("event_id", _DROP),
    ("event_id", ""),
    ("event_id", 7),
    ("type", 3),
    ("type", _DROP),
    ("order_id", None),
    ("order_id", ""),
    ("external_txn_id", ["txn"]),
    ("merchant_id", ""),
    ("amount_minor", -1),
    ("amount_minor", 12.5),
    ("amount_minor", 100.0),
    ("amount_minor", True),
    ("amount_minor", "100"),
    ("amount_minor", None),
    ("amount_minor", 2**63),
    ("currency", "US"),
    ("currency", "USDT"),
    ("currency", "U$D"),
    ("currency", "\u00dcSD"),
    ("currency", 840),
    ("currency", _DROP),
    ("app_id", ""),
    ("app_id", 5),
    ("occurred_at", -1),
    ("occurred_at", 1.5e12),
    ("occurred_at", False),
    ("occurred_at", "2024-01-01"),
    ("refund_id", "rf-1"),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_each_bad_field_is_bad_payload_naming_the_field(
    adapter: HmacAdapter, field: str, value: object
) -> None:
    body = body_dict(event())
    if value is _DROP:
        del body[field]
    else:
        body[field] = value
    caught = rejection(adapter, signed(body))
    assert caught.kind == "BAD_PAYLOAD"
    assert field in caught.message


def test_refund_without_refund_id_is_bad_payload(adapter: HmacAdapter) -> None:
    body = body_dict(event(PaymentKind.REFUND_SUCCEEDED)) | {"refund_id": None}
    caught = rejection(adapter, signed(body))
    assert caught.kind == "BAD_PAYLOAD" and "refund_id" in caught.message


def test_optional_app_id_may_be_absent(adapter: HmacAdapter) -> None:
    body = body_dict(event())
    del body["app_id"], body["refund_id"]
    parsed = adapter.parse(signed(body).headers, signed(body).body, RECEIVED_MS)
    assert parsed is not None and parsed.app_id is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"a string"',
        b"\xff\xfe{}",
        b'{"amount_minor": NaN}',
        b"[" * 100_000,
        '{"event_id": "x"}'.encode("utf-16"),
    ],
)
def test_undecodable_bodies_are_bad_payload(adapter: HmacAdapter, raw: bytes) -> None:
    assert rejection(adapter, signed(raw)).kind == "BAD_PAYLOAD"


# --- any input -----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
hmac_fields = st.sampled_from([*body_dict(event()), "extra"])


@given(headers=st.dictionaries(st.text(), st.text()), body=st.binary(), received=st.integers())
def test_random_input_only_ever_rejects(
    headers: dict[str, str], body: bytes, received: int
) -> None:
    with pytest.raises(Rejection):
        HmacAdapter([SECRET]).parse(headers, body, received)


@given(body=st.binary() | st.builds(lambda v: json.dumps(v).encode(), json_values))
def test_signed_random_bodies_never_raise_anything_else(body: bytes) -> None:
    delivery = make_hmac_delivery(body, SECRET, timestamp=T)
    try:
        result = HmacAdapter([SECRET]).parse(delivery.headers, delivery.body, RECEIVED_MS)
    except Rejection as exc:
        assert exc.kind == "BAD_PAYLOAD"
    else:
        assert result is None or isinstance(result, PaymentEvent)


@given(changes=st.dictionaries(hmac_fields, json_values, min_size=1, max_size=3))
def test_signed_mutated_events_never_raise_anything_else(changes: dict[str, Any]) -> None:
    body = body_dict(event()) | changes
    delivery = signed(body)
    try:
        result = HmacAdapter([SECRET]).parse(delivery.headers, delivery.body, RECEIVED_MS)
    except Rejection as exc:
        assert exc.kind == "BAD_PAYLOAD"
    else:
        assert result is None or isinstance(result, PaymentEvent)


@pytest.mark.parametrize("headers", [None, 42, {"x-topup-signature": 7}, {1: "a"}])
@pytest.mark.parametrize("body", [None, "text body", 10**12])
def test_wrongly_typed_arguments_are_rejections(headers: Any, body: Any) -> None:
    with pytest.raises(Rejection):
        HmacAdapter([SECRET]).parse(headers, body, RECEIVED_MS)


# --- secrets stay hidden -------------------------------------------------------------


def test_no_secret_in_repr_or_str() -> None:
    adapters = [HmacAdapter(SECRETS), StripeAdapter(SECRETS)]
    for adapter in adapters:
        for text in (repr(adapter), str(adapter)):
            assert all(secret not in text for secret in SECRETS)


@pytest.mark.parametrize("secrets", [[], "single-string", [""], ["  "], [None]])
def test_unusable_secret_lists_are_refused(secrets: Any) -> None:
    with pytest.raises(ValueError) as caught:
        HmacAdapter(secrets)
    assert "single-string" not in str(caught.value)


# --- registry ------------------------------------------------------------------------


def settings(**changes: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "hmac_secrets": (),
        "stripe_webhook_secrets": (),
        "wechatpay_platform_keys": {},
        "wechatpay_apiv3_key": None,
        "signature_tolerance_s": {},
    }
    return SimpleNamespace(**(values | changes))


def test_build_adapters_builds_only_configured_providers() -> None:
    assert build_adapters(settings()) == {}
    adapters = build_adapters(settings(hmac_secrets=(SECRET,), stripe_webhook_secrets=("whsec_x",)))
    assert sorted(adapters) == ["hmac", "stripe"]
    assert adapter_for(adapters, "hmac") is adapters["hmac"]


@pytest.mark.parametrize("provider", ["wechatpay", "paypal", "", None, 3])
def test_adapter_for_unknown_provider(provider: Any) -> None:
    adapters = build_adapters(settings(hmac_secrets=(SECRET,)))
    with pytest.raises(Rejection) as caught:
        adapter_for(adapters, provider)
    assert caught.value.kind == "UNKNOWN_PROVIDER"


def test_build_adapters_applies_the_provider_tolerance() -> None:
    adapters = build_adapters(
        settings(hmac_secrets=(SECRET,), signature_tolerance_s={"hmac": 10, "stripe": 900})
    )
    assert adapters["hmac"].tolerance_s == 10
    delivery = make_hmac_delivery(event(), SECRET, timestamp=T - 11)
    assert rejection(adapters["hmac"], delivery, T * 1000).kind == "STALE_SIGNATURE"


def test_build_adapters_refuses_half_a_wechatpay_configuration() -> None:
    with pytest.raises(ValueError, match="wechatpay"):
        build_adapters(settings(wechatpay_apiv3_key="k" * 32))


# --- the normalised event ------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PaymentKind))
def test_payment_event_json_round_trip(kind: PaymentKind) -> None:
    ev = event(kind)
    wire = json.loads(json.dumps(ev.to_dict()))
    assert wire["kind"] == kind.value
    assert PaymentEvent.from_dict(wire) == ev
    assert PaymentEvent.from_dict(wire | {"future_field": 1}) == ev


@pytest.mark.parametrize(
    "changes",
    [{"kind": "PAID"}, {"currency": "usd"}, {"amount_minor": -5}, {"order_id": ""}],
)
def test_payment_event_from_dict_refuses_invalid_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PaymentEvent.from_dict(event().to_dict() | changes)


def test_payment_event_from_dict_names_a_missing_field() -> None:
    wire = event().to_dict()
    del wire["merchant_id"]
    with pytest.raises(ValueError, match="merchant_id"):
        PaymentEvent.from_dict(wire)
