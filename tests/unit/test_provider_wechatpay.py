"""The WeChat Pay API v3 adapter, checked against the wechatpayv3 SDK as an oracle."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from hypothesis import given
from hypothesis import strategies as st
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.core import Core

from streams.domain.common.payments import PaymentEvent, PaymentKind
from streams.providers import (
    PlatformKey,
    Rejection,
    WechatpayAdapter,
    build_adapters,
    load_platform_key,
)
from streams.providers.testing import (
    SignedDelivery,
    WechatpayTestKey,
    encrypt_wechatpay_resource,
    make_wechatpay_delivery,
    make_wechatpay_key,
    wechatpay_resource,
)

APIV3_KEY = "Zq3t6w9z$C&F)J@NcRfUjXn2r5u8x!A%"
OTHER_APIV3_KEY = "0123456789abcdefghijklmnopqrstuv"
T = 1_528_425_296  # 2018-06-08T10:34:56+08:00
RECEIVED_MS = T * 1000 + 800
MCHID = "1230000109"
APPID = "wxd678efh567hg6787"


@pytest.fixture(scope="module")
def cert_key() -> WechatpayTestKey:
    return make_wechatpay_key()


@pytest.fixture(scope="module")
def next_cert_key() -> WechatpayTestKey:
    return make_wechatpay_key()


@pytest.fixture(scope="module")
def pub_key() -> WechatpayTestKey:
    return make_wechatpay_key(public_key_id=True)


@pytest.fixture(scope="module")
def stranger_key() -> WechatpayTestKey:
    return make_wechatpay_key()


@pytest.fixture(scope="module")
def adapter(
    cert_key: WechatpayTestKey, next_cert_key: WechatpayTestKey, pub_key: WechatpayTestKey
) -> WechatpayAdapter:
    keys = {k.serial: k.platform_key() for k in (cert_key, next_cert_key, pub_key)}
    return WechatpayAdapter(keys, APIV3_KEY)


@pytest.fixture(autouse=True)
def _sdk_stays_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # On an unknown serial the SDK downloads certificates from WeChat Pay; not in tests.
    monkeypatch.setattr(Core, "_update_certificates", lambda self: None)


def event(kind: PaymentKind = PaymentKind.PAYMENT_SUCCEEDED, **changes: Any) -> PaymentEvent:
    refund = kind in (PaymentKind.REFUND_SUCCEEDED, PaymentKind.REFUND_FAILED)
    values: dict[str, Any] = {
        "provider": "wechatpay",
        "event_id": "EV-2018022511223320873",
        "external_txn_id": "1217752501201407033233368018",
        "order_id": "1217752501201407033233368018",
        "kind": kind,
        "amount_minor": 100,
        "currency": "CNY",
        "merchant_id": MCHID,
        "app_id": None if refund else APPID,
        "occurred_at": T * 1000,
        "refund_id": "50200207182018070300011301001" if refund else None,
    }
    return PaymentEvent(**(values | changes))


def rejection(adapter: WechatpayAdapter, delivery: SignedDelivery, at_ms: int = RECEIVED_MS) -> Any:
    with pytest.raises(Rejection) as caught:
        adapter.parse(delivery.headers, delivery.body, at_ms)
    text = f"{caught.value} {caught.value!r}"
    assert APIV3_KEY not in text and OTHER_APIV3_KEY not in text
    signature = delivery.headers.get("wechatpay-signature", "")
    assert len(signature) < 16 or signature not in text
    return caught.value


def sdk_for(key: WechatpayTestKey, tmp_path: Path) -> WeChatPay:
    """The wechatpayv3 SDK configured with this platform key the way a merchant would."""
    merchant_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    merchant_pem = merchant_key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    ).decode()
    common = {
        "wechatpay_type": WeChatPayType.NATIVE,
        "mchid": MCHID,
        "private_key": merchant_pem,
        "cert_serial_no": "444F4864EA9B34415",
        "appid": APPID,
        "apiv3_key": APIV3_KEY,
    }
    if key.certificate is None:
        return WeChatPay(**common, public_key=key.pem().decode(), public_key_id=key.serial)
    (tmp_path / f"{key.serial}.pem").write_bytes(key.pem())
    return WeChatPay(**common, cert_dir=str(tmp_path))


def notification(
    resource: dict[str, Any] | bytes,
    /,
    *,
    event_type: Any = "TRANSACTION.SUCCESS",
    apiv3_key: str = APIV3_KEY,
    **envelope: Any,
) -> bytes:
    plaintext = (
        resource
        if isinstance(resource, bytes)
        else json.dumps(resource, ensure_ascii=False).encode("utf-8")
    )
    refund = isinstance(event_type, str) and event_type.startswith("REFUND.")
    original_type = "refund" if refund else "transaction"
    body = {
        "id": "EV-2018022511223320873",
        "create_time": "2018-06-08T10:34:59+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功",
        "resource": encrypt_wechatpay_resource(plaintext, apiv3_key, original_type=original_type),
    } | envelope
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def flip(text: str, index: int) -> str:
    replacement = "B" if text[index] == "A" else "A"
    return text[:index] + replacement + text[index + 1 :]


# --- verification, with the SDK as oracle --------------------------------------------


def tampered(delivery: SignedDelivery, case: str, stranger: WechatpayTestKey) -> SignedDelivery:
    headers = dict(delivery.headers)
    body = delivery.body
    if case == "body":
        marker = body.index(b'"ciphertext":"') + 20
        body = body[:marker] + bytes([body[marker] ^ 0x01]) + body[marker + 1 :]
    elif case == "signature":
        headers["wechatpay-signature"] = flip(headers["wechatpay-signature"], 10)
    elif case == "timestamp":
        headers["wechatpay-timestamp"] = str(int(headers["wechatpay-timestamp"]) + 1)
    elif case == "nonce":
        headers["wechatpay-nonce"] = flip(headers["wechatpay-nonce"], 0)
    elif case == "other signer":
        forged = make_wechatpay_delivery(body, stranger, timestamp=T)
        headers["wechatpay-signature"] = forged.headers["wechatpay-signature"]
    return SignedDelivery(delivery.provider, headers, body)


@pytest.mark.parametrize("key_name", ["cert_key", "pub_key"])
def test_valid_callback_agrees_with_the_sdk(
    key_name: str, adapter: WechatpayAdapter, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    key = request.getfixturevalue(key_name)
    ev = event()
    delivery = make_wechatpay_delivery(ev, key, APIV3_KEY, timestamp=T)
    sdk_result = sdk_for(key, tmp_path).callback(delivery.headers, delivery.body)
    assert sdk_result is not None
    assert sdk_result["resource"] == wechatpay_resource(ev)
    assert sdk_result["event_type"] == "TRANSACTION.SUCCESS"
    assert adapter.parse(delivery.headers, delivery.body, RECEIVED_MS) == ev


@pytest.mark.parametrize("case", ["body", "signature", "timestamp", "nonce", "other signer"])
@pytest.mark.parametrize("key_name", ["cert_key", "pub_key"])
def test_tampered_callbacks_are_refused_by_both(
    key_name: str,
    case: str,
    adapter: WechatpayAdapter,
    stranger_key: WechatpayTestKey,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    key = request.getfixturevalue(key_name)
    delivery = tampered(
        make_wechatpay_delivery(event(), key, APIV3_KEY, timestamp=T), case, stranger_key
    )
    assert sdk_for(key, tmp_path).callback(delivery.headers, delivery.body) is None
    assert rejection(adapter, delivery).kind == "SIGNATURE_INVALID"


@pytest.mark.parametrize("key_name", ["cert_key", "pub_key"])
def test_signed_but_undecryptable_resource_is_bad_payload(
    key_name: str, adapter: WechatpayAdapter, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    key = request.getfixturevalue(key_name)
    body = notification(wechatpay_resource(event()), apiv3_key=OTHER_APIV3_KEY)
    delivery = make_wechatpay_delivery(body, key, timestamp=T)
    # The SDK verifies the signature and then fails to decrypt: it yields nothing.
    assert sdk_for(key, tmp_path).callback(delivery.headers, delivery.body) is None
    assert rejection(adapter, delivery).kind == "BAD_PAYLOAD"


def test_tampered_ciphertext_fails_the_signature_before_decryption(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey
) -> None:
    good = json.loads(notification(wechatpay_resource(event())))
    ciphertext = bytearray(base64.b64decode(good["resource"]["ciphertext"]))
    ciphertext[0] ^= 0xFF
    good["resource"]["ciphertext"] = base64.b64encode(ciphertext).decode()
    body = json.dumps(good, ensure_ascii=False).encode()
    signed_before = make_wechatpay_delivery(
        notification(wechatpay_resource(event())), cert_key, timestamp=T
    )
    unsigned = SignedDelivery("wechatpay", signed_before.headers, body)
    assert rejection(adapter, unsigned).kind == "SIGNATURE_INVALID"
    resigned = make_wechatpay_delivery(body, cert_key, timestamp=T)
    assert rejection(adapter, resigned).kind == "BAD_PAYLOAD"


def test_rotation_every_configured_serial_verifies(
    adapter: WechatpayAdapter,
    cert_key: WechatpayTestKey,
    next_cert_key: WechatpayTestKey,
    pub_key: WechatpayTestKey,
) -> None:
    for key in (cert_key, next_cert_key, pub_key):
        delivery = make_wechatpay_delivery(event(), key, APIV3_KEY, timestamp=T)
        assert adapter.parse(delivery.headers, delivery.body, RECEIVED_MS) == event()


def test_serials_match_regardless_of_case(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey
) -> None:
    delivery = make_wechatpay_delivery(event(), cert_key, APIV3_KEY, timestamp=T)
    headers = delivery.headers | {"wechatpay-serial": cert_key.serial.lower()}
    assert adapter.parse(headers, delivery.body, RECEIVED_MS) == event()


def test_unknown_serial_is_signature_invalid(
    adapter: WechatpayAdapter, stranger_key: WechatpayTestKey
) -> None:
    delivery = make_wechatpay_delivery(event(), stranger_key, APIV3_KEY, timestamp=T)
    assert rejection(adapter, delivery).kind == "SIGNATURE_INVALID"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("wechatpay-timestamp", None),
        ("wechatpay-nonce", None),
        ("wechatpay-serial", None),
        ("wechatpay-signature", None),
        ("wechatpay-timestamp", "-1528425296"),
        ("wechatpay-timestamp", "1528425296\n"),
        ("wechatpay-nonce", "abc\ndef"),
        ("wechatpay-nonce", "a" * 65),
        ("wechatpay-signature", "not base64!"),
        ("wechatpay-signature", "WECHATPAY/SIGNTEST/" + "A" * 40),
        ("wechatpay-signature-type", "WECHATPAY2-SM2-WITH-SM3"),
    ],
)
def test_malformed_headers_are_signature_invalid(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey, header: str, value: str | None
) -> None:
    delivery = make_wechatpay_delivery(event(), cert_key, APIV3_KEY, timestamp=T)
    headers = dict(delivery.headers)
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    broken = SignedDelivery("wechatpay", headers, delivery.body)
    assert rejection(adapter, broken).kind == "SIGNATURE_INVALID"


def test_signature_type_header_may_be_absent(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey
) -> None:
    delivery = make_wechatpay_delivery(event(), cert_key, APIV3_KEY, timestamp=T)
    headers = {k: v for k, v in delivery.headers.items() if k != "wechatpay-signature-type"}
    assert adapter.parse(headers, delivery.body, RECEIVED_MS) == event()


@pytest.mark.parametrize(
    ("offset_s", "ok"), [(-300, True), (300, True), (-301, False), (301, False)]
)
def test_signature_age_both_directions(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey, offset_s: int, ok: bool
) -> None:
    delivery = make_wechatpay_delivery(event(), cert_key, APIV3_KEY, timestamp=T + offset_s)
    if ok:
        assert adapter.parse(delivery.headers, delivery.body, T * 1000) is not None
    else:
        assert rejection(adapter, delivery, T * 1000).kind == "STALE_SIGNATURE"


def test_forged_and_stale_is_signature_invalid(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey, stranger_key: WechatpayTestKey
) -> None:
    good = make_wechatpay_delivery(event(), cert_key, APIV3_KEY, timestamp=T - 3_600)
    forged = tampered(good, "other signer", stranger_key)
    assert rejection(adapter, forged).kind == "SIGNATURE_INVALID"


def test_certificate_outside_its_validity_is_refused(cert_key: WechatpayTestKey) -> None:
    expired = PlatformKey(cert_key.platform_key().public_key, 0, T * 1000 - 1)
    adapter = WechatpayAdapter({cert_key.serial: expired}, APIV3_KEY)
    delivery = make_wechatpay_delivery(event(), cert_key, APIV3_KEY, timestamp=T)
    assert rejection(adapter, delivery).kind == "SIGNATURE_INVALID"


# --- keys from settings --------------------------------------------------------------


def settings(keys: dict[str, str], apiv3_key: str | None = APIV3_KEY) -> SimpleNamespace:
    return SimpleNamespace(
        hmac_secrets=(),
        stripe_webhook_secrets=(),
        wechatpay_platform_keys=keys,
        wechatpay_apiv3_key=apiv3_key,
        signature_tolerance_s={"wechatpay": 60},
    )


def test_certificate_and_public_key_files_both_work(
    tmp_path: Path, cert_key: WechatpayTestKey, pub_key: WechatpayTestKey
) -> None:
    (tmp_path / "platform_cert.pem").write_bytes(cert_key.pem())
    (tmp_path / "pub_key.pem").write_bytes(pub_key.pem())
    assert cert_key.pem().startswith(b"-----BEGIN CERTIFICATE-----")
    assert pub_key.pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    adapters = build_adapters(
        settings(
            {
                cert_key.serial: str(tmp_path / "platform_cert.pem"),
                pub_key.serial: str(tmp_path / "pub_key.pem"),
            }
        )
    )
    wechatpay = adapters["wechatpay"]
    assert wechatpay.tolerance_s == 60
    for key in (cert_key, pub_key):
        delivery = make_wechatpay_delivery(event(), key, APIV3_KEY, timestamp=T)
        assert wechatpay.parse(delivery.headers, delivery.body, RECEIVED_MS) == event()


def test_certificate_filed_under_another_serial_is_refused(
    tmp_path: Path, cert_key: WechatpayTestKey, next_cert_key: WechatpayTestKey
) -> None:
    path = tmp_path / "cert.pem"
    path.write_bytes(cert_key.pem())
    with pytest.raises(ValueError, match="another serial"):
        build_adapters(settings({next_cert_key.serial: str(path)}))


@pytest.mark.parametrize("apiv3_key", [None, "short", "x" * 33])
def test_unusable_apiv3_keys_are_refused(
    tmp_path: Path, pub_key: WechatpayTestKey, apiv3_key: str | None
) -> None:
    path = tmp_path / "pub.pem"
    path.write_bytes(pub_key.pem())
    with pytest.raises(ValueError) as caught:
        build_adapters(settings({pub_key.serial: str(path)}, apiv3_key))
    assert apiv3_key is None or apiv3_key not in str(caught.value)


def test_weak_or_non_rsa_keys_are_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="2048"):
        load_platform_key("PUB_KEY_ID_1", WechatpayTestKey("PUB_KEY_ID_1", weak).pem())
    curve = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = curve.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="RSA"):
        load_platform_key("PUB_KEY_ID_2", pem)


# --- normalisation -------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PaymentKind))
def test_builder_round_trips_every_kind(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey, kind: PaymentKind
) -> None:
    ev = event(kind)
    delivery = make_wechatpay_delivery(ev, cert_key, APIV3_KEY, timestamp=T)
    assert all(name == name.lower() for name in delivery.headers)
    assert adapter.parse(delivery.headers, delivery.body, RECEIVED_MS) == ev


def test_success_time_in_china_standard_time(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey
) -> None:
    resource = wechatpay_resource(event()) | {"success_time": "2018-06-08T10:34:56+08:00"}
    delivery = make_wechatpay_delivery(notification(resource), cert_key, timestamp=T)
    parsed = adapter.parse(delivery.headers, delivery.body, RECEIVED_MS)
    assert parsed is not None and parsed.occurred_at == 1_528_425_296_000


def test_failed_payment_falls_back_to_the_notification_time(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey
) -> None:
    resource = wechatpay_resource(event(PaymentKind.PAYMENT_FAILED))
    assert "success_time" not in resource
    body = notification(resource, event_type="TRANSACTION.FAIL")
    parsed = adapter.parse(*_signed(body, cert_key))
    assert parsed is not None and parsed.kind is PaymentKind.PAYMENT_FAILED
    assert parsed.occurred_at == 1_528_425_299_000


def test_refund_closed_is_a_failed_refund_in_cny_by_default(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey
) -> None:
    resource = wechatpay_resource(event(PaymentKind.REFUND_FAILED)) | {"refund_status": "CLOSED"}
    assert "currency" not in resource["amount"]
    parsed = adapter.parse(*_signed(notification(resource, event_type="REFUND.CLOSED"), cert_key))
    assert parsed is not None
    assert (parsed.kind, parsed.currency, parsed.app_id) == (PaymentKind.REFUND_FAILED, "CNY", None)


def test_refund_in_another_currency(adapter: WechatpayAdapter, cert_key: WechatpayTestKey) -> None:
    ev = event(PaymentKind.REFUND_SUCCEEDED, currency="HKD")
    delivery = make_wechatpay_delivery(ev, cert_key, APIV3_KEY, timestamp=T)
    assert adapter.parse(delivery.headers, delivery.body, RECEIVED_MS) == ev


def _signed(body: bytes, key: WechatpayTestKey) -> tuple[dict[str, str], bytes, int]:
    delivery = make_wechatpay_delivery(body, key, timestamp=T)
    return delivery.headers, delivery.body, RECEIVED_MS


@pytest.mark.parametrize(
    ("event_type", "changes", "field"),
    [
        ("TRANSACTION.SUCCESS", {"trade_state": "NOTPAY"}, "trade_state"),
        ("TRANSACTION.SUCCESS", {"trade_state": None}, "trade_state"),
        ("TRANSACTION.FAIL", {"trade_state": "SUCCESS"}, "trade_state"),
        ("REFUND.SUCCESS", {"refund_status": "ABNORMAL"}, "refund_status"),
        ("TRANSACTION.SUCCESS", {"out_trade_no": ""}, "out_trade_no"),
        ("TRANSACTION.SUCCESS", {"mchid": None, "sp_mchid": "1900000100"}, "mchid"),
        ("TRANSACTION.SUCCESS", {"appid": 7}, "appid"),
        ("TRANSACTION.SUCCESS", {"amount": {"total": "100", "currency": "CNY"}}, "amount.total"),
        ("TRANSACTION.SUCCESS", {"amount": {"total": 1.0}}, "amount.total"),
        ("TRANSACTION.SUCCESS", {"amount": {"total": 1, "currency": "RMB¥"}}, "currency"),
        ("TRANSACTION.SUCCESS", {"success_time": "08/06/2018 10:34"}, "success_time"),
        ("TRANSACTION.SUCCESS", {"success_time": "2018-06-08T10:34:56"}, "success_time"),
    ],
)
def test_bad_resource_fields_are_bad_payload(
    adapter: WechatpayAdapter,
    cert_key: WechatpayTestKey,
    event_type: str,
    changes: dict[str, Any],
    field: str,
) -> None:
    kind = PaymentKind.REFUND_SUCCEEDED if event_type.startswith("REFUND") else None
    resource = wechatpay_resource(event(kind) if kind else event()) | changes
    delivery = make_wechatpay_delivery(
        notification(resource, event_type=event_type), cert_key, timestamp=T
    )
    caught = rejection(adapter, delivery)
    assert caught.kind == "BAD_PAYLOAD"
    assert field in caught.message


@pytest.mark.parametrize(
    "envelope",
    [
        {"resource_type": "plain"},
        {"id": ""},
        {"resource": "ciphertext"},
        {"event_type": None},
    ],
)
def test_bad_envelope_fields_are_bad_payload(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey, envelope: dict[str, Any]
) -> None:
    body = notification(wechatpay_resource(event()), **envelope)
    delivery = make_wechatpay_delivery(body, cert_key, timestamp=T)
    assert rejection(adapter, delivery).kind == "BAD_PAYLOAD"


@pytest.mark.parametrize(
    "resource_changes",
    [
        {"algorithm": "AEAD_SM4_GCM"},
        {"ciphertext": "%%%"},
        {"nonce": "short"},
        {"associated_data": "refund"},
    ],
)
def test_bad_encryption_parameters_are_bad_payload(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey, resource_changes: dict[str, str]
) -> None:
    body = json.loads(notification(wechatpay_resource(event())))
    body["resource"] |= resource_changes
    delivery = make_wechatpay_delivery(json.dumps(body).encode(), cert_key, timestamp=T)
    assert rejection(adapter, delivery).kind == "BAD_PAYLOAD"


@pytest.mark.parametrize("event_type", ["COUPON.USE", "TRANSACTION.PAY_BACK", "REFUND.PROCESSING"])
def test_other_event_types_are_verified_then_ignored(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey, event_type: str
) -> None:
    body = notification(b"not even decryptable", event_type=event_type)
    assert adapter.parse(*_signed(body, cert_key)) is None


# --- any input, and secrets ----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
header_names = st.sampled_from(
    [
        "wechatpay-timestamp",
        "wechatpay-nonce",
        "wechatpay-serial",
        "wechatpay-signature",
        "wechatpay-signature-type",
    ]
)


@given(headers=st.dictionaries(header_names | st.text(), st.text()), body=st.binary())
def test_random_input_only_ever_rejects(
    adapter: WechatpayAdapter, headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(Rejection):
        adapter.parse(headers, body, RECEIVED_MS)


@given(
    resource_changes=st.dictionaries(
        st.sampled_from([*wechatpay_resource(event()), "refund_status", "x"]),
        json_values,
        max_size=3,
    ),
    envelope_changes=st.dictionaries(
        st.sampled_from(["id", "create_time", "event_type", "resource_type", "resource"]),
        json_values
        | st.sampled_from(["TRANSACTION.SUCCESS", "TRANSACTION.FAIL", "REFUND.SUCCESS"]),
        max_size=2,
    ),
)
def test_signed_mutated_notifications_never_raise_anything_else(
    adapter: WechatpayAdapter,
    cert_key: WechatpayTestKey,
    resource_changes: dict[str, Any],
    envelope_changes: dict[str, Any],
) -> None:
    resource = wechatpay_resource(event()) | resource_changes
    body = notification(resource, **envelope_changes)
    try:
        result = adapter.parse(*_signed(body, cert_key))
    except Rejection as exc:
        assert exc.kind == "BAD_PAYLOAD"
    else:
        assert result is None or isinstance(result, PaymentEvent)


@given(plaintext=st.binary(max_size=64))
def test_signed_random_plaintexts_never_raise_anything_else(
    adapter: WechatpayAdapter, cert_key: WechatpayTestKey, plaintext: bytes
) -> None:
    try:
        adapter.parse(*_signed(notification(plaintext), cert_key))
    except Rejection as exc:
        assert exc.kind == "BAD_PAYLOAD"


def test_no_secret_in_repr(adapter: WechatpayAdapter, cert_key: WechatpayTestKey) -> None:
    for text in (repr(adapter), str(adapter), repr(cert_key)):
        assert APIV3_KEY not in text
        assert "PRIVATE" not in text
