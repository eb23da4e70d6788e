from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import ConfigError, load_settings

SECRET = "whsec_do-not-print-me"


def test_defaults_without_any_setting():
    settings = load_settings({})
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.partitions == 4
    assert settings.signature_tolerance_s == {"hmac": 300, "stripe": 300, "wechatpay": 300}
    assert (settings.hmac_secrets, settings.stripe_webhook_secrets) == ((), ())
    assert settings.max_amount_minor == 10**12
    assert load_settings({"TOPUP_MAX_AMOUNT_MINOR": "500000"}).max_amount_minor == 500_000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOPUP_PARTITIONS", "four"),
        ("TOPUP_PARTITIONS", "0"),
        ("TOPUP_WEB_PORT", "-1"),
        ("KAFKA_BOOTSTRAP_SERVERS", "  "),
        ("TOPUP_HMAC_SECRETS", " , "),
        ("TOPUP_WECHATPAY_APIV3_KEY", "too-short"),
        ("TOPUP_WECHATPAY_PLATFORM_KEYS", "serial-without-path"),
        ("TOPUP_WECHATPAY_PLATFORM_KEYS", "SERIAL1=/nonexistent/key.pem"),
        ("TOPUP_SIGNATURE_TOLERANCE_S_STRIPE", "soon"),
        ("TOPUP_MAX_AMOUNT_MINOR", "0"),
        # Above the hard ceiling a sum of amounts could leave 64 bits.
        ("TOPUP_MAX_AMOUNT_MINOR", str(10**12 + 1)),
        ("TOPUP_STANDBY_REPLICAS", "one"),
        ("TOPUP_STANDBY_REPLICAS", "-1"),
        # Each worker keeps a copy of every partition it does not own: 2 is not a choice.
        ("TOPUP_STANDBY_REPLICAS", "2"),
        ("TOPUP_BATCH_TARGET_MS", "-1"),
        ("TOPUP_BATCH_TARGET_MS", "soon"),
        ("TOPUP_FETCH_WAIT_MAX_MS", "0"),
    ],
)
def test_a_malformed_setting_fails_naming_it(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_the_batch_target_defaults_to_200_ms_and_0_turns_it_off():
    assert load_settings({}).batch_target_ms == 200
    assert load_settings({"TOPUP_BATCH_TARGET_MS": "0"}).batch_target_ms == 0
    assert load_settings({"TOPUP_FETCH_WAIT_MAX_MS": "20"}).fetch_wait_max_ms == 20


def test_standby_replicas_default_to_none_and_take_one():
    assert load_settings({}).standby_replicas == 0
    assert load_settings({"TOPUP_STANDBY_REPLICAS": "1"}).standby_replicas == 1
    with pytest.raises(ConfigError, match="must be 0 or 1"):
        load_settings({"TOPUP_STANDBY_REPLICAS": "3"})


def test_secrets_from_env_and_from_files(tmp_path: Path):
    secret_file = tmp_path / "stripe"
    secret_file.write_text(f"{SECRET}, whsec_second\n")
    key_file = tmp_path / "platform.pem"
    key_file.write_text("pem")
    settings = load_settings(
        {
            "TOPUP_HMAC_SECRETS": "a,b",
            "TOPUP_STRIPE_WEBHOOK_SECRETS_FILE": str(secret_file),
            "TOPUP_WECHATPAY_PLATFORM_KEYS": f"S1={key_file},PUB_KEY_ID_2={key_file}",
            "TOPUP_WECHATPAY_APIV3_KEY": "k" * 32,
        }
    )
    assert settings.hmac_secrets == ("a", "b")
    assert settings.stripe_webhook_secrets == (SECRET, "whsec_second")
    assert settings.wechatpay_platform_keys == {"S1": str(key_file), "PUB_KEY_ID_2": str(key_file)}
    assert settings.wechatpay_apiv3_key == "k" * 32


def test_a_setting_and_its_file_together_are_refused(tmp_path: Path):
    path = tmp_path / "s"
    path.write_text("x")
    with pytest.raises(ConfigError, match="TOPUP_HMAC_SECRETS"):
        load_settings({"TOPUP_HMAC_SECRETS": "x", "TOPUP_HMAC_SECRETS_FILE": str(path)})


def test_an_unreadable_secret_file_fails_naming_it(tmp_path: Path):
    with pytest.raises(ConfigError, match="TOPUP_HMAC_SECRETS_FILE"):
        load_settings({"TOPUP_HMAC_SECRETS_FILE": str(tmp_path / "missing")})


def test_config_file_is_read_and_the_environment_wins(tmp_path: Path):
    path = tmp_path / "topup.env"
    path.write_text("# comment\nTOPUP_PARTITIONS=8\nTOPUP_APP_ID=from-file\n")
    settings = load_settings({"TOPUP_CONFIG_FILE": str(path), "TOPUP_APP_ID": "from-env"})
    assert settings.partitions == 8
    assert settings.app_id == "from-env"


def test_config_file_syntax_error_names_the_line(tmp_path: Path):
    path = tmp_path / "topup.env"
    path.write_text("TOPUP_PARTITIONS=8\nnot a setting\n")
    with pytest.raises(ConfigError, match=r"topup.env:2"):
        load_settings({"TOPUP_CONFIG_FILE": str(path)})


def test_per_provider_tolerance_overrides_the_global_one():
    settings = load_settings(
        {"TOPUP_SIGNATURE_TOLERANCE_S": "120", "TOPUP_SIGNATURE_TOLERANCE_S_WECHATPAY": "600"}
    )
    assert settings.signature_tolerance_s == {"hmac": 120, "stripe": 120, "wechatpay": 600}


def test_secrets_never_appear_in_repr_or_str():
    settings = load_settings(
        {"TOPUP_HMAC_SECRETS": SECRET, "TOPUP_STRIPE_WEBHOOK_SECRETS": SECRET,
         "TOPUP_WECHATPAY_APIV3_KEY": "s" * 32}
    )
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert "s" * 32 not in repr(settings)


def test_recon_report_since_takes_iso_dates_and_epoch_ms():
    from streams.recon_report_cli import parse_since

    assert parse_since(None) is None
    assert parse_since("1795000000000") == 1_795_000_000_000
    assert parse_since("2026-11-25") == 1_795_564_800_000
    assert parse_since("2026-11-25T01:00:00+01:00") == 1_795_564_800_000
    with pytest.raises(ValueError):
        parse_since("last tuesday")


def test_require_risk_verdict_is_a_flag():
    assert load_settings({}).require_risk_verdict is True
    assert load_settings({"TOPUP_REQUIRE_RISK_VERDICT": "false"}).require_risk_verdict is False
    with pytest.raises(ConfigError, match="TOPUP_REQUIRE_RISK_VERDICT"):
        load_settings({"TOPUP_REQUIRE_RISK_VERDICT": "maybe"})


def test_a_worker_with_a_malformed_rule_file_stops_at_start_naming_the_line(tmp_path):
    import subprocess
    import sys

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        'version: "1"\nrules:\n  - id: x\n    family: amount\n    points: ten\n'
        '    when: {signal: order.amount_minor, op: ">=", value: 1}\n'
    )
    env = {"TOPUP_RISK_RULES": str(rules), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "worker"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "risk rules refused" in done.stderr
    assert f"{rules}:5" in done.stderr
    assert "points" in done.stderr


def test_the_mismatch_rate_thresholds_are_settings() -> None:
    settings = load_settings({"TOPUP_RECON_MISMATCH_THRESHOLD_BP": "250",
                              "TOPUP_RECON_MIN_DECISIONS": "5",
                              "TOPUP_RECON_PAGE_INTAKE_LAG_S": "60",
                              "TOPUP_RECON_PAGE_VERIFICATION_FAILURE_BP": "1000"})
    assert (settings.recon_mismatch_threshold_bp, settings.recon_min_decisions,
            settings.recon_page_intake_lag_s, settings.recon_page_verification_failure_bp) == (
        250, 5, 60, 1000)
    with pytest.raises(ConfigError, match="TOPUP_RECON_MIN_DECISIONS"):
        load_settings({"TOPUP_RECON_MIN_DECISIONS": "0"})
