"""What the end-to-end risk tests share: the test rule set, a worker environment that
runs it, and the latest record per key of a topic."""

from __future__ import annotations

from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all

RULES = """\
version: "test-1"
rules:
  - id: device_farm
    family: device
    description: three accounts on one device in a day
    points: 80
    when: {signal: velocity.device.24h.distinct_accounts, op: ">=", value: 3}
  - id: large_amount
    family: amount
    description: a large top-up
    points: 50
    when:
      all:
        - {signal: order.amount_minor, op: ">=", value: 100000}
        - {signal: order.amount_minor, op: "<", value: 500000}
  - id: very_large_amount
    family: amount
    description: a very large top-up
    points: 70
    when: {signal: order.amount_minor, op: ">=", value: 500000}
  - id: shared_ip
    family: network
    description: two accounts on one ip within the hour
    points: 20
    when: {signal: velocity.ip.1h.distinct_accounts, op: ">=", value: 2}
"""


def latest(records, topic: str, key: str) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for record in decode_all(records, topic):
        latest[record[key]] = record
    return latest


def risk_env(kafka_env, tmp_path) -> dict[str, str]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return {**kafka_env, "TOPUP_RISK_RULES": str(rules),
            "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS)}
