"""Deterministic generated traffic for the demo, tests and benchmarks."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

BASE_TIME_MS = 1_795_000_000_000  # a fixed instant so a seed always yields the same stream


@dataclass(frozen=True)
class GeneratedOrder:
    record: dict[str, Any]
    correlation_id: str


def order_created(
    run_id: str, index: int, rng: random.Random, provider: str = "hmac"
) -> GeneratedOrder:
    order_id = f"{run_id}-o{index:06d}"
    user = rng.randrange(1, 10_000)
    record = {
        "event_id": f"{order_id}-created",
        "type": "CREATED",
        "order_id": order_id,
        "occurred_at": BASE_TIME_MS + index * 1_000,
        "account_id": f"acct-{user}",
        "user_id": f"user-{user}",
        "amount_minor": rng.choice((500, 1_000, 2_000, 5_000, 10_000)),
        "currency": "CNY" if provider == "wechatpay" else "USD",
        "provider": provider,
        "merchant_id": f"merchant-{provider}",
        "app_id": None,
        "device_id": f"dev-{rng.randrange(1, 20_000)}",
        "ip": f"198.51.100.{rng.randrange(1, 255)}",
        "payment_token": None,
        "account_created_at": BASE_TIME_MS - rng.randrange(1, 400) * 86_400_000,
        "user_verified": rng.random() < 0.7,
        "promo_id": None,
        "promo_bonus_minor": 0,
        "provider_intent_id": None,
        "refund_id": None,
        "actor": None,
    }
    return GeneratedOrder(record=record, correlation_id=f"corr-{order_id}")
