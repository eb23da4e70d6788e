"""Does an input name a provider this deployment takes payments through?

Known providers (`streams.config.PROVIDERS`) are the ones the code can verify; configured
ones are those whose webhook secrets are set (`configured_providers`). Only a configured
provider's callbacks can arrive, so an order or a settlement record naming another one
describes money this deployment can never see move: it is refused at the edge, as
UNKNOWN_PROVIDER, like a callback for that provider.
"""

from __future__ import annotations

from collections.abc import Collection

from streams.config import Settings


class ProviderNotConfigured(ValueError):
    """The input names a provider that has no webhook secrets here."""


def configured_providers(settings: Settings) -> frozenset[str]:
    """The providers with webhook secrets, as `streams.providers.build_adapters` builds
    adapters for them (WeChat Pay needs its platform keys and its API v3 key)."""
    configured: set[str] = set()
    if settings.hmac_secrets:
        configured.add("hmac")
    if settings.stripe_webhook_secrets:
        configured.add("stripe")
    if settings.wechatpay_platform_keys and settings.wechatpay_apiv3_key:
        configured.add("wechatpay")
    return frozenset(configured)


def check_configured(what: str, provider: str, configured: Collection[str]) -> None:
    """Raises ProviderNotConfigured naming `what` and the configured set."""
    if provider not in configured:
        names = ", ".join(sorted(configured)) or "none"
        raise ProviderNotConfigured(
            f"{what} names provider {provider[:40]!r}, which is not configured here "
            f"(configured: {names}; a provider is configured by its webhook secrets)"
        )
