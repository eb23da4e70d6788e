"""Schema registry settings: URL, credentials (also from files), output format."""

from __future__ import annotations

import pytest

from streams.config import ConfigError, load_settings
from streams.registry import RegistryClient


def test_credentials_come_from_files_and_stay_out_of_repr(tmp_path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2-registry\n")
    settings = load_settings({
        "TOPUP_SCHEMA_REGISTRY_URL": "http://registry:8081/apis/ccompat/v7",
        "TOPUP_SCHEMA_REGISTRY_USER": "svc",
        "TOPUP_SCHEMA_REGISTRY_PASSWORD_FILE": str(secret),
        "TOPUP_OUTPUT_FORMAT": "Confluent",
    })
    assert settings.schema_registry_password == "hunter2-registry"
    assert settings.output_format == "confluent"
    assert "hunter2" not in repr(settings)
    client = RegistryClient(settings.schema_registry_url or "", "svc", "hunter2-registry")
    assert "hunter2" not in repr(client)


def test_the_default_is_single_object_without_a_registry() -> None:
    settings = load_settings({})
    assert (settings.schema_registry_url, settings.output_format) == (None, "single-object")


@pytest.mark.parametrize("env, message", [
    ({"TOPUP_OUTPUT_FORMAT": "confluent"}, "needs TOPUP_SCHEMA_REGISTRY_URL"),
    ({"TOPUP_OUTPUT_FORMAT": "protobuf"}, "single-object, confluent"),
    ({"TOPUP_SCHEMA_REGISTRY_URL": "http://u:p@registry:8081"}, "without credentials"),
    ({"TOPUP_SCHEMA_REGISTRY_URL": "registry:8081"}, "http(s) URL"),
])
def test_bad_registry_settings_are_refused(env, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)
