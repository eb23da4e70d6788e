"""Provider secrets and signed deliveries shared by the intake integration tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streams.providers.testing import WechatpayTestKey, make_wechatpay_key

HMAC_SECRETS = ("hmac-secret-current-3f9a", "hmac-secret-previous-77c1")
STRIPE_SECRET = "whsec_integration_test_5e2b8d"
APIV3_KEY = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class ProviderSecrets:
    env: dict[str, str]
    wechat_key: WechatpayTestKey

    @property
    def all_secret_strings(self) -> list[str]:
        return [*HMAC_SECRETS, STRIPE_SECRET, APIV3_KEY]


def provider_secrets(tmp_path: Path) -> ProviderSecrets:
    key = make_wechatpay_key()
    pem = tmp_path / "wechat-platform.pem"
    pem.write_bytes(key.pem())
    env = {
        "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS),
        "TOPUP_STRIPE_WEBHOOK_SECRETS": STRIPE_SECRET,
        "TOPUP_WECHATPAY_PLATFORM_KEYS": f"{key.serial}={pem}",
        "TOPUP_WECHATPAY_APIV3_KEY": APIV3_KEY,
    }
    return ProviderSecrets(env, key)
