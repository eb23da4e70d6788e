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

from streams.domain.common.int64 import MAX_AMOUNT_MINOR

PROVIDERS = ("hmac", "stripe", "wechatpay")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = "127.0.0.1:9092"
    # Kafka client security, passed to every client by streams.kafka_clients.client_config.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    kafka_ssl_ca_location: str | None = None
    kafka_ssl_certificate_location: str | None = None
    kafka_ssl_key_location: str | None = None
    kafka_ssl_key_password: str | None = field(default=None, repr=False)
    app_id: str = "topup-guard"
    partitions: int = 4
    replication_factor: int = 1
    state_dir: Path = Path(".state")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    topic_retention_days: int = 7
    dedup_retention_days: int = 35
    # An ended order is removed after this much event time without input: longer than the
    # card networks' 120-day chargeback window and the providers' refund windows.
    order_retention_days: int = 180
    # The balance stage remembers an applied ledger entry_id this long in ledger event time.
    ledger_dedup_days: int = 35
    orphan_hold_s: int = 900
    session_timeout_s: int = 10
    # The consumer group protocol: "consumer" (KIP-848, incremental: only moved partitions
    # stop) or "classic" (eager range: every rebalance stops every partition).
    group_protocol: str = "consumer"
    # A revoked store partition stays on disk this long, so a restart or a rebalance that
    # hands it back restores only the changelog's tail; then it is removed.
    state_cleanup_delay_s: int = 600
    # 1: the worker keeps a warm copy of every store partition it does not own, tailing
    # its changelog, so taking one over (a failover) restores only the tail.
    standby_replicas: int = 0
    # One transaction per batch: larger batches amortize its commit and fold more writes
    # of a hot key into one changelog record; a quiet pipeline never waits for one to fill.
    batch_max_records: int = 2000
    # A batch takes no more records than its handling and commit can do in this long,
    # from what records and commits have cost so far (runtime/batch_policy.py): it bounds
    # what a burst adds to every hop. 0: only batch_max_records bounds a batch.
    batch_target_ms: int = 200
    # The broker holds an empty fetch this long; a record committed meanwhile may wait
    # as long before the next stage reads it (once per hop between stages).
    fetch_wait_max_ms: int = 100
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
    # An event time further than this ahead of its record's broker timestamp is refused
    # (SCHEMA_INVALID), so one absurd date cannot move a partition's clock for good.
    max_event_skew_s: int = 7 * 24 * 3600
    # The largest amount (minor units) an order, bonus, payment or settlement line may
    # carry; anything above is dead-lettered at the edge as SCHEMA_INVALID.
    max_amount_minor: int = MAX_AMOUNT_MINOR
    # Unset: event times in the past are allowed (backfills, replays); set, one further
    # than this behind its record's broker timestamp is refused like a far-future one.
    max_event_age_s: int | None = None
    webhook_rate_per_ip: int = 50
    webhook_rate_burst: int = 100
    # The public listener carries only POST /webhooks/{provider}; web_host/web_port above
    # are the operator listener (balances, metrics, health), never to be exposed.
    webhook_host: str = "0.0.0.0"
    webhook_port: int = 6065
    # Slowloris bounds: a connection gets this long to send its request headers (and may
    # idle this long between keep-alive requests), and this long to send its whole body.
    webhook_header_timeout_s: int = 10
    webhook_read_timeout_s: int = 30
    # Open connections on the public listener; at the cap the longest-waiting idle one goes.
    webhook_max_connections: int = 512
    # Optional bearer token for the operator listener's data endpoints (balances, and
    # /metrics too when operator_token_on_metrics); /health stays open for probes.
    operator_token: str | None = field(default=None, repr=False)
    operator_token_on_metrics: bool = False
    # The operator console (/console on the operator listener) is off unless this is set.
    console_token: str | None = field(default=None, repr=False)
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
    # Wall-clock seconds without input after which a partition's event time is moved by
    # a tick (streams/runtime/ticks.py); it bounds how late a deadline fires when quiet.
    idle_advance_s: int = 5
    # Event time a settled payment's callback gets before reconciliation credits it from
    # the settlement line (MISSING_CREDIT, AUTO_CORRECTED): it only classifies.
    # Two minutes: providers deliver callbacks within seconds of the payment and settle
    # hours later, so a line still uncredited after this is a lost callback, and the
    # customer should not wait longer for money the provider has already settled.
    recon_missing_credit_grace_s: int = 120
    # Schema registry (Confluent REST API): with a URL, inputs also read the Confluent
    # wire format; OUTPUT_FORMAT=confluent writes it. Credentials stay out of repr.
    schema_registry_url: str | None = None
    schema_registry_user: str | None = field(default=None, repr=False)
    schema_registry_password: str | None = field(default=None, repr=False)
    output_format: str = "single-object"


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def _non_negative_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must be 0 or more, got {value}")
    return value


STANDBY_REPLICAS = (0, 1)


def _standby_replicas(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be 0 or 1, got {raw!r}") from None
    if value not in STANDBY_REPLICAS:
        # A worker keeps a copy of every partition it does not own (topology.md): there is
        # no choosing 2 of them, so a larger number would promise what is not done.
        raise ConfigError(f"{name} must be 0 or 1 (1: each worker keeps a warm copy of "
                          f"every store partition it does not own), got {value}")
    return value


def _amount_limit(name: str, raw: str) -> int:
    value = _positive_int(name, raw)
    if value > MAX_AMOUNT_MINOR:
        # Above the hard ceiling sums of amounts could leave 64 bits.
        raise ConfigError(f"{name} must be at most {MAX_AMOUNT_MINOR}, got {value}")
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


OUTPUT_FORMATS = ("single-object", "confluent")


def _output_format(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in OUTPUT_FORMATS:
        raise ConfigError(f"{name} must be one of {', '.join(OUTPUT_FORMATS)}, got {raw!r}")
    return value


def _registry_url(name: str, raw: str) -> str:
    value = _non_empty(name, raw)
    if not value.startswith(("http://", "https://")) or "@" in value.split("/")[2]:
        # Credentials in the URL would end up in logs: they have their own settings.
        raise ConfigError(f"{name} must be an http(s) URL without credentials in it "
                          "(use TOPUP_SCHEMA_REGISTRY_USER / _PASSWORD)")
    return value


def _apiv3_key(name: str, raw: str) -> str:
    if len(raw.encode()) != 32:
        raise ConfigError(f"{name} must be exactly 32 bytes (the WeChat Pay API v3 key)")
    return raw


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _choice(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().upper()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return value
    return parse


def _group_protocol(name: str, raw: str) -> str:
    return _choice(("CLASSIC", "CONSUMER"))(name, raw).lower()


def _existing_file(name: str, raw: str) -> str:
    path = _non_empty(name, raw)
    if not Path(path).is_file():
        raise ConfigError(f"{name}: file {path!r} does not exist")
    return path


def _check_kafka_security(settings: Settings) -> None:
    """SASL needs a mechanism and credentials; say which one is missing at start."""
    if settings.kafka_security_protocol.startswith("SASL_"):
        for name, value in (("KAFKA_SASL_MECHANISM", settings.kafka_sasl_mechanism),
                            ("KAFKA_SASL_USERNAME", settings.kafka_sasl_username),
                            ("KAFKA_SASL_PASSWORD", settings.kafka_sasl_password)):
            if value is None:
                raise ConfigError(
                    f"{name} is required with KAFKA_SECURITY_PROTOCOL="
                    f"{settings.kafka_security_protocol}")


def _non_empty(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{name} must not be empty")
    return raw.strip()


# Environment name -> (settings attribute, parser).
_PARSERS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "KAFKA_BOOTSTRAP_SERVERS": ("bootstrap_servers", _non_empty),
    "KAFKA_SECURITY_PROTOCOL": ("kafka_security_protocol", _choice(SECURITY_PROTOCOLS)),
    "KAFKA_SASL_MECHANISM": ("kafka_sasl_mechanism", _choice(SASL_MECHANISMS)),
    "KAFKA_SASL_USERNAME": ("kafka_sasl_username", _non_empty),
    "KAFKA_SASL_PASSWORD": ("kafka_sasl_password", lambda n, raw: raw),
    "KAFKA_SSL_CA_LOCATION": ("kafka_ssl_ca_location", _existing_file),
    "KAFKA_SSL_CERTIFICATE_LOCATION": ("kafka_ssl_certificate_location", _existing_file),
    "KAFKA_SSL_KEY_LOCATION": ("kafka_ssl_key_location", _existing_file),
    "KAFKA_SSL_KEY_PASSWORD": ("kafka_ssl_key_password", lambda n, raw: raw),
    "TOPUP_APP_ID": ("app_id", _non_empty),
    "TOPUP_PARTITIONS": ("partitions", _positive_int),
    "TOPUP_REPLICATION_FACTOR": ("replication_factor", _positive_int),
    "TOPUP_STATE_DIR": ("state_dir", lambda n, raw: Path(_non_empty(n, raw))),
    "TOPUP_WEB_HOST": ("web_host", _non_empty),
    "TOPUP_WEB_PORT": ("web_port", _positive_int),
    "TOPUP_TOPIC_RETENTION_DAYS": ("topic_retention_days", _positive_int),
    "TOPUP_DEDUP_RETENTION_DAYS": ("dedup_retention_days", _positive_int),
    "TOPUP_ORDER_RETENTION_DAYS": ("order_retention_days", _positive_int),
    "TOPUP_LEDGER_DEDUP_DAYS": ("ledger_dedup_days", _positive_int),
    "TOPUP_ORPHAN_HOLD_S": ("orphan_hold_s", _positive_int),
    "TOPUP_SESSION_TIMEOUT_S": ("session_timeout_s", _positive_int),
    "TOPUP_GROUP_PROTOCOL": ("group_protocol", _group_protocol),
    "TOPUP_STATE_CLEANUP_DELAY_S": ("state_cleanup_delay_s", _positive_int),
    "TOPUP_STANDBY_REPLICAS": ("standby_replicas", _standby_replicas),
    "TOPUP_BATCH_MAX_RECORDS": ("batch_max_records", _positive_int),
    "TOPUP_BATCH_TARGET_MS": ("batch_target_ms", _non_negative_int),
    "TOPUP_FETCH_WAIT_MAX_MS": ("fetch_wait_max_ms", _positive_int),
    "TOPUP_MAX_EVENT_SKEW_S": ("max_event_skew_s", _positive_int),
    "TOPUP_MAX_AMOUNT_MINOR": ("max_amount_minor", _amount_limit),
    "TOPUP_MAX_EVENT_AGE_S": ("max_event_age_s", _positive_int),
    "TOPUP_TXN_CALL_TIMEOUT_S": ("txn_call_timeout_s", _positive_int),
    "TOPUP_TRANSACTION_TIMEOUT_S": ("transaction_timeout_s", _positive_int),
    "TOPUP_STALL_THRESHOLD_S": ("stall_threshold_s", _positive_int),
    "TOPUP_SHUTDOWN_TIMEOUT_S": ("shutdown_timeout_s", _positive_int),
    "TOPUP_WEBHOOK_MAX_BODY_BYTES": ("webhook_max_body_bytes", _positive_int),
    "TOPUP_WEBHOOK_RATE_PER_IP": ("webhook_rate_per_ip", _positive_int),
    "TOPUP_WEBHOOK_RATE_BURST": ("webhook_rate_burst", _positive_int),
    "TOPUP_WEBHOOK_HOST": ("webhook_host", _non_empty),
    "TOPUP_WEBHOOK_PORT": ("webhook_port", _positive_int),
    "TOPUP_WEBHOOK_HEADER_TIMEOUT_S": ("webhook_header_timeout_s", _positive_int),
    "TOPUP_WEBHOOK_READ_TIMEOUT_S": ("webhook_read_timeout_s", _positive_int),
    "TOPUP_WEBHOOK_MAX_CONNECTIONS": ("webhook_max_connections", _positive_int),
    "TOPUP_OPERATOR_TOKEN": ("operator_token", _non_empty),
    "TOPUP_OPERATOR_TOKEN_ON_METRICS": ("operator_token_on_metrics", _flag),
    "TOPUP_CONSOLE_TOKEN": ("console_token", _non_empty),
    "TOPUP_HMAC_SECRETS": ("hmac_secrets", _secret_list),
    "TOPUP_STRIPE_WEBHOOK_SECRETS": ("stripe_webhook_secrets", _secret_list),
    "TOPUP_WECHATPAY_PLATFORM_KEYS": ("wechatpay_platform_keys", _platform_keys),
    "TOPUP_WECHATPAY_APIV3_KEY": ("wechatpay_apiv3_key", _apiv3_key),
    "TOPUP_RISK_RULES": ("risk_rules", lambda n, raw: Path(_non_empty(n, raw))),
    "TOPUP_REQUIRE_RISK_VERDICT": ("require_risk_verdict", _flag),
    "TOPUP_RECON_MISMATCH_THRESHOLD_BP": ("recon_mismatch_threshold_bp", _positive_int),
    "TOPUP_RECON_MIN_DECISIONS": ("recon_min_decisions", _positive_int),
    "TOPUP_RECON_PAGE_INTAKE_LAG_S": ("recon_page_intake_lag_s", _positive_int),
    "TOPUP_IDLE_ADVANCE_S": ("idle_advance_s", _positive_int),
    "TOPUP_RECON_MISSING_CREDIT_GRACE_S": ("recon_missing_credit_grace_s", _positive_int),
    "TOPUP_RECON_PAGE_VERIFICATION_FAILURE_BP": (
        "recon_page_verification_failure_bp", _positive_int),
    "TOPUP_SCHEMA_REGISTRY_URL": ("schema_registry_url", _registry_url),
    "TOPUP_SCHEMA_REGISTRY_USER": ("schema_registry_user", _non_empty),
    "TOPUP_SCHEMA_REGISTRY_PASSWORD": ("schema_registry_password", lambda n, raw: raw),
    "TOPUP_OUTPUT_FORMAT": ("output_format", _output_format),
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
    if values.get("output_format") == "confluent" and "schema_registry_url" not in values:
        raise ConfigError("TOPUP_OUTPUT_FORMAT=confluent needs TOPUP_SCHEMA_REGISTRY_URL")
    settings = Settings(**values)
    _check_kafka_security(settings)
    return settings
