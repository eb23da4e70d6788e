"""Kafka TLS/SASL settings: parsed, checked, passed to every client, never in a repr."""

from __future__ import annotations

import pytest

from streams.config import ConfigError, load_settings
from streams.kafka_clients import aiokafka_config, client_config

SASL = {
    "KAFKA_BOOTSTRAP_SERVERS": "broker:9094",
    "KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
    "KAFKA_SASL_USERNAME": "topup",
    "KAFKA_SASL_PASSWORD": "s3cret-pw-9d1",
}


def test_sasl_settings_reach_both_client_families_and_stay_out_of_reprs() -> None:
    settings = load_settings(SASL)
    assert client_config(settings) == {
        "bootstrap.servers": "broker:9094", "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "topup",
        "sasl.password": "s3cret-pw-9d1",
    }
    aio = aiokafka_config(settings)
    assert (aio["security_protocol"], aio["sasl_mechanism"], aio["sasl_plain_username"],
            aio["sasl_plain_password"]) == ("SASL_PLAINTEXT", "SCRAM-SHA-256", "topup",
                                            "s3cret-pw-9d1")
    assert "s3cret-pw-9d1" not in repr(settings)


def test_password_from_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "pw"
    secret.write_text("from-file-pw\n")
    env = {**SASL, "KAFKA_SASL_PASSWORD_FILE": str(secret)}
    del env["KAFKA_SASL_PASSWORD"]
    assert client_config(load_settings(env))["sasl.password"] == "from-file-pw"


def test_plaintext_by_default() -> None:
    assert client_config(load_settings({})) == {
        "bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize(("env", "named"), [
    ({**SASL, "KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    ({**SASL, "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
    ({k: v for k, v in SASL.items() if k != "KAFKA_SASL_PASSWORD"}, "KAFKA_SASL_PASSWORD"),
    ({**SASL, "KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"}, "KAFKA_SSL_CA_LOCATION"),
])
def test_malformed_security_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as error:
        load_settings(env)
    assert "s3cret-pw-9d1" not in str(error.value)
