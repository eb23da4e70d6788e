"""Webhook provider adapters: verify a raw delivery, then normalise it to a PaymentEvent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams.providers.base import (
    DEFAULT_TOLERANCE_S,
    Rejection,
    RejectionKind,
    WebhookAdapter,
    adapter_for,
)
from streams.providers.hmac_provider import HmacAdapter
from streams.providers.stripe_provider import StripeAdapter
from streams.providers.wechatpay import PlatformKey, WechatpayAdapter, load_platform_key

__all__ = [
    "HmacAdapter",
    "PlatformKey",
    "Rejection",
    "RejectionKind",
    "StripeAdapter",
    "WebhookAdapter",
    "WechatpayAdapter",
    "adapter_for",
    "build_adapters",
    "load_platform_key",
]


def build_adapters(settings: Any) -> dict[str, WebhookAdapter]:
    """One adapter per provider whose secrets are configured; the rest stay absent.

    Reads the WeChat Pay key files. Raises ValueError on unusable configuration, including
    WeChat Pay keys without an API v3 key or the reverse (a silent half-configuration
    would reject every WeChat Pay callback as UNKNOWN_PROVIDER).
    """
    tolerances = settings.signature_tolerance_s

    def tolerance(provider: str) -> int:
        return tolerances.get(provider, DEFAULT_TOLERANCE_S)

    adapters: dict[str, WebhookAdapter] = {}
    if settings.hmac_secrets:
        adapters["hmac"] = HmacAdapter(settings.hmac_secrets, tolerance("hmac"))
    if settings.stripe_webhook_secrets:
        adapters["stripe"] = StripeAdapter(settings.stripe_webhook_secrets, tolerance("stripe"))
    key_files, apiv3_key = settings.wechatpay_platform_keys, settings.wechatpay_apiv3_key
    if bool(key_files) != bool(apiv3_key):
        raise ValueError("wechatpay needs both platform keys and the API v3 key, or neither")
    if key_files:
        keys = {
            serial: load_platform_key(serial, Path(path).read_bytes())
            for serial, path in key_files.items()
        }
        adapters["wechatpay"] = WechatpayAdapter(keys, apiv3_key, tolerance("wechatpay"))
    return adapters
