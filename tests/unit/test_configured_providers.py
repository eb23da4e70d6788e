"""Providers are the configured ones: orders and settlement records naming another are
refused, with the configured set in the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import Settings
from streams.domain.common.configured_providers import (
    ProviderNotConfigured,
    check_configured,
    configured_providers,
)
from streams.domain.orders.inputs import OrderEvent, check_order_provider

T0 = 1_795_000_000_000
CREATED = {"event_id": "e", "type": "CREATED", "order_id": "o", "occurred_at": T0,
           "account_id": "a", "user_id": "u", "amount_minor": 100,
           "currency": "USD", "provider": "stripe", "merchant_id": "m"}


def test_configured_providers_are_those_with_webhook_secrets(tmp_path: Path) -> None:
    assert configured_providers(Settings()) == frozenset()
    assert configured_providers(Settings(hmac_secrets=("s",))) == {"hmac"}
    assert configured_providers(Settings(stripe_webhook_secrets=("whsec_x",))) == {"stripe"}
    # WeChat Pay needs both halves, as its adapter does.
    keys = {"S1": str(tmp_path / "key.pem")}
    assert configured_providers(Settings(wechatpay_platform_keys=keys)) == frozenset()
    both = Settings(hmac_secrets=("s",), wechatpay_platform_keys=keys,
                    wechatpay_apiv3_key="k" * 32)
    assert configured_providers(both) == {"hmac", "wechatpay"}


def test_a_known_but_unconfigured_provider_is_refused_with_the_configured_set() -> None:
    check_configured("order", "hmac", {"hmac"})
    with pytest.raises(ProviderNotConfigured) as caught:
        check_configured("settlement record", "stripe", {"hmac", "wechatpay"})
    assert str(caught.value) == (
        "settlement record names provider 'stripe', which is not configured here "
        "(configured: hmac, wechatpay; a provider is configured by its webhook secrets)")
    with pytest.raises(ProviderNotConfigured, match=r"configured: none"):
        check_configured("order", "hmac", set())


def test_only_a_created_order_must_name_a_configured_provider() -> None:
    created = OrderEvent.from_record(CREATED)
    check_order_provider(created, {"stripe"})
    with pytest.raises(ProviderNotConfigured, match="order names provider 'stripe'"):
        check_order_provider(created, {"hmac"})
    # Later events of an order may carry no provider: the CREATED one was checked.
    canceled = OrderEvent.from_record({**CREATED, "type": "CANCELED", "provider": "",
                                       "event_id": "e2"})
    check_order_provider(canceled, {"hmac"})
