"""One settings object, read from the environment and an optional file.

Every setting may also be given as ``<NAME>_FILE`` (the path of a file holding the value),
which is how container secrets are usually mounted. Secrets are kept out of ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PROVIDERS = ("hmac", "stripe", "wechatpay")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "topup-guard"
    partitions: int = 4
    replication_factor: int = 1
    state_dir: Path = Path(".state")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    topic_retention_days: int = 7
    dedup_retention_days: int = 35
    orphan_hold_s: int = 900
    session_timeout_s: int = 10
    # One transaction per batch: larger batches amortize its commit and fold more writes
    # of a hot key into one changelog record; a quiet pipeline never waits for one to fill.
    batch_max_records: int = 2000
    # A transactional client call that has not returned by then is abandoned and the
    # producer and consumer re-created (librdkafka #5456: some calls ignore their timeout).
    txn_call_timeout_s: int = 30
    # The broker aborts a transaction open longer than this (a dead or frozen worker's).
    transaction_timeout_s: int = 10
    # /health answers 503 when records in hand stay uncommitted longer than this.
    stall_threshold_s: int = 60
    # SIGTERM: the worker exits within this, even when a client call hangs.
    shutdown_timeout_s: int = 20
    webhook_max_body_bytes: int = 65_536
    webhook_rate_per_ip: int = 50
    webhook_rate_burst: int = 100
    signature_tolerance_s: Mapping[str, int] = field(
        default_factory=lambda: dict.fromkeys(PROVIDERS, 300)
    )
    hmac_secrets: tuple[str, ...] = field(default=(), repr=False)
    stripe_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    wechatpay_platform_keys: Mapping[str, str] = field(default_factory=dict)
    wechatpay_apiv3_key: str | None = field(default=None, repr=False)
    # None: the documented default, deploy/risk-rules.yaml.
    risk_rules: Path | None = None
    # On: a confirmed payment waits in PAYMENT_CONFIRMED for the risk decision.
    require_risk_verdict: bool = True
    # MISMATCH_RATE_HIGH: an hour's break rate over this (with enough decisions) warns,
    # and pages when intake lagged or failed verification past its limits that hour.
    recon_mismatch_threshold_bp: int = 100
    recon_min_decisions: int = 20
    recon_page_intake_lag_s: int = 300
    recon_page_verification_failure_bp: int = 500


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _secret_list(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items:
        raise ConfigError(f"{name} is set but holds no secret (comma-separated list expected)")
    return items


def _platform_keys(name: str, raw: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        serial, sep, path = pair.partition("=")
        if not sep or not serial.strip() or not path.strip():
            raise ConfigError(f"{name} expects serial=pem-path pairs separated by commas")
        if not Path(path.strip()).is_file():
            raise ConfigError(f"{name}: key file for serial {serial.strip()!r} does not exist")
        keys[serial.strip()] = path.strip()
    if not keys:
        raise ConfigError(f"{name} is set but names no key")
    return keys


def _apiv3_key(name: str, raw: str) -> str:
    if len(raw.encode()) != 32:
        raise ConfigError(f"{name} must be exactly 32 bytes (the WeChat Pay API v3 key)")
    return raw


def _non_empty(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{name} must not be empty")
    return raw.strip()


# Environment name -> (settings attribute, parser).
_PARSERS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "KAFKA_BOOTSTRAP_SERVERS": ("bootstrap_servers", _non_empty),
    "TOPUP_APP_ID": ("app_id", _non_empty),
    "TOPUP_PARTITIONS": ("partitions", _positive_int),
    "TOPUP_REPLICATION_FACTOR": ("replication_factor", _positive_int),
    "TOPUP_STATE_DIR": ("state_dir", lambda n, raw: Path(_non_empty(n, raw))),
    "TOPUP_WEB_HOST": ("web_host", _non_empty),
    "TOPUP_WEB_PORT": ("web_port", _positive_int),
    "TOPUP_TOPIC_RETENTION_DAYS": ("topic_retention_days", _positive_int),
    "TOPUP_DEDUP_RETENTION_DAYS": ("dedup_retention_days", _positive_int),
    "TOPUP_ORPHAN_HOLD_S": ("orphan_hold_s", _positive_int),
    "TOPUP_SESSION_TIMEOUT_S": ("session_timeout_s", _positive_int),
    "TOPUP_BATCH_MAX_RECORDS": ("batch_max_records", _positive_int),
    "TOPUP_TXN_CALL_TIMEOUT_S": ("txn_call_timeout_s", _positive_int),
    "TOPUP_TRANSACTION_TIMEOUT_S": ("transaction_timeout_s", _positive_int),
    "TOPUP_STALL_THRESHOLD_S": ("stall_threshold_s", _positive_int),
    "TOPUP_SHUTDOWN_TIMEOUT_S": ("shutdown_timeout_s", _positive_int),
    "TOPUP_WEBHOOK_MAX_BODY_BYTES": ("webhook_max_body_bytes", _positive_int),
    "TOPUP_WEBHOOK_RATE_PER_IP": ("webhook_rate_per_ip", _positive_int),
    "TOPUP_WEBHOOK_RATE_BURST": ("webhook_rate_burst", _positive_int),
    "TOPUP_HMAC_SECRETS": ("hmac_secrets", _secret_list),
    "TOPUP_STRIPE_WEBHOOK_SECRETS": ("stripe_webhook_secrets", _secret_list),
    "TOPUP_WECHATPAY_PLATFORM_KEYS": ("wechatpay_platform_keys", _platform_keys),
    "TOPUP_WECHATPAY_APIV3_KEY": ("wechatpay_apiv3_key", _apiv3_key),
    "TOPUP_RISK_RULES": ("risk_rules", lambda n, raw: Path(_non_empty(n, raw))),
    "TOPUP_REQUIRE_RISK_VERDICT": ("require_risk_verdict", _flag),
    "TOPUP_RECON_MISMATCH_THRESHOLD_BP": ("recon_mismatch_threshold_bp", _positive_int),
    "TOPUP_RECON_MIN_DECISIONS": ("recon_min_decisions", _positive_int),
    "TOPUP_RECON_PAGE_INTAKE_LAG_S": ("recon_page_intake_lag_s", _positive_int),
    "TOPUP_RECON_PAGE_VERIFICATION_FAILURE_BP": (
        "recon_page_verification_failure_bp", _positive_int),
}
_TOLERANCE_PREFIX = "TOPUP_SIGNATURE_TOLERANCE_S"


def _read_file_setting(name: str, path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE: cannot read {path!r} ({exc.strerror})") from None


def _read_config_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines, '#' comments; the same names as the environment."""
    values: dict[str, str] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"TOPUP_CONFIG_FILE: cannot read {path!r} ({exc.strerror})") from None
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"TOPUP_CONFIG_FILE {path}:{number}: expected KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


def _raw_values(env: Mapping[str, str]) -> dict[str, str]:
    """Merge file and environment (the environment wins), resolving <NAME>_FILE indirections."""
    merged = dict(_read_config_file(env["TOPUP_CONFIG_FILE"])) if "TOPUP_CONFIG_FILE" in env else {}
    merged.update(env)
    resolved: dict[str, str] = {}
    for key, value in merged.items():
        if key.endswith("_FILE") and key != "TOPUP_CONFIG_FILE":
            name = key.removesuffix("_FILE")
            if name in _PARSERS or name.startswith(_TOLERANCE_PREFIX):
                if name in merged:
                    raise ConfigError(f"set either {name} or {name}_FILE, not both")
                resolved[name] = _read_file_setting(name, value)
                continue
        resolved[key] = value
    return resolved


def _tolerances(raw: Mapping[str, str]) -> dict[str, int]:
    tolerances = dict.fromkeys(PROVIDERS, 300)
    if _TOLERANCE_PREFIX in raw:
        tolerances = dict.fromkeys(
            PROVIDERS, _positive_int(_TOLERANCE_PREFIX, raw[_TOLERANCE_PREFIX])
        )
    for provider in PROVIDERS:
        name = f"{_TOLERANCE_PREFIX}_{provider.upper()}"
        if name in raw:
            tolerances[provider] = _positive_int(name, raw[name])
    return tolerances


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    raw = _raw_values(os.environ if env is None else env)
    values: dict[str, Any] = {
        attribute: parse(name, raw[name])
        for name, (attribute, parse) in _PARSERS.items()
        if name in raw
    }
    values["signature_tolerance_s"] = _tolerances(raw)
    known = {f.name for f in fields(Settings)}
    assert set(values) <= known
    return Settings(**values)
