"""The schema registry of deploy/registry for tests: started once per session, like the broker."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streams.codecs import SchemaCatalog
from streams.confluent import ConfluentFraming
from streams.registry import RegistryClient

REPO = Path(__file__).resolve().parents[1]
REGISTRY_DIR = REPO / "deploy" / "registry"
TEST_PORT = int(os.environ.get("TOPUP_TEST_REGISTRY_PORT", "18081"))
# The session registry asks for basic auth, so every test also proves credentials work.
USER, PASSWORD = "topup-test", "registry-secret-7f3a"


@dataclass
class RegistryProcess:
    url: str
    port: int
    data_dir: Path

    def stop(self) -> None:
        subprocess.run([str(REGISTRY_DIR / "stop")], env=_env(self.port, self.data_dir),
                       check=True, timeout=60, capture_output=True)


def _env(port: int, data_dir: Path | None, preload: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, TOPUP_REGISTRY_PORT=str(port),
               REGISTRY_USER=USER, REGISTRY_PASSWORD=PASSWORD)
    if preload is not None:
        env["REGISTRY_PRELOAD"] = str(preload)
    if data_dir is not None:
        env["TOPUP_REGISTRY_DATA_DIR"] = str(data_dir)
    return env


def start_registry(
    port: int = TEST_PORT, data_dir: Path | None = None, preload: Path | None = None
) -> RegistryProcess:
    """Start (or reuse) a registry through deploy/registry/start; a failure fails the test."""
    result = subprocess.run([str(REGISTRY_DIR / "start")], env=_env(port, data_dir, preload),
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"deploy/registry/start failed:\n{result.stderr}")
    url = result.stdout.strip().splitlines()[-1]
    default_dir = REGISTRY_DIR / ".data" / str(port)
    return RegistryProcess(url, port, data_dir or default_dir)


def sr_config(url: str) -> dict[str, str]:
    """confluent-kafka SchemaRegistryClient settings for the test registry."""
    return {"url": url, "basic.auth.user.info": f"{USER}:{PASSWORD}"}


def registry_catalog(url: str) -> SchemaCatalog:
    """A catalog that reads both framings, for checking Confluent-framed outputs."""
    catalog = SchemaCatalog()
    catalog.attach_registry(ConfluentFraming(RegistryClient(url, USER, PASSWORD)))
    return catalog
