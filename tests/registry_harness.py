"""Schema registries for tests, started like the broker.

The session registry is a real one: Apicurio Registry (deploy/apicurio), spoken to through
its Confluent-compatible API. The stand-in of deploy/registry is kept for the one thing
Apicurio cannot do here: HTTP basic auth (Apicurio authenticates with OIDC), which the
credentials test needs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from streams.codecs import SchemaCatalog
from streams.confluent import ConfluentFraming
from streams.registry import RegistryClient

REPO = Path(__file__).resolve().parents[1]
APICURIO_DIR = REPO / "deploy" / "apicurio"
STANDIN_DIR = REPO / "deploy" / "registry"
# Where Apicurio serves the Confluent-compatible API (deploy/apicurio/start prints it too).
CCOMPAT_PATH = "/apis/ccompat/v7"
TEST_PORT = int(os.environ.get("TOPUP_TEST_REGISTRY_PORT", "18081"))
# Only the stand-in asks for these (basic auth); Apicurio runs without authentication.
USER, PASSWORD = "topup-test", "registry-secret-7f3a"
# The first start fetches Apicurio (158 MB) from Maven Central.
START_TIMEOUT_S = 900


@dataclass
class RegistryProcess:
    url: str
    script_dir: Path
    env: dict[str, str]

    def stop(self) -> None:
        subprocess.run([str(self.script_dir / "stop")], env=self.env,
                       check=True, timeout=60, capture_output=True)


def _start(script_dir: Path, env: dict[str, str]) -> RegistryProcess:
    result = subprocess.run([str(script_dir / "start")], env=env,
                            capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError(f"{script_dir}/start failed:\n{result.stderr}")
    return RegistryProcess(result.stdout.strip().splitlines()[-1], script_dir, env)


def start_registry(port: int = TEST_PORT, data_dir: Path | None = None) -> RegistryProcess:
    """Start (or reuse) Apicurio Registry through deploy/apicurio/start, with BACKWARD
    compatibility like Confluent's default; returns its ccompat URL. A failure fails the test."""
    env = dict(os.environ, TOPUP_APICURIO_PORT=str(port))
    if data_dir is not None:
        env["TOPUP_APICURIO_DATA_DIR"] = str(data_dir)
    return _start(APICURIO_DIR, env)


def start_standin_registry(port: int, data_dir: Path) -> RegistryProcess:
    """The stand-in registry of deploy/registry, requiring basic auth (USER, PASSWORD)."""
    env = dict(os.environ, TOPUP_REGISTRY_PORT=str(port), TOPUP_REGISTRY_DATA_DIR=str(data_dir),
               REGISTRY_USER=USER, REGISTRY_PASSWORD=PASSWORD)
    return _start(STANDIN_DIR, env)


def sr_config(url: str, auth: bool = False) -> dict[str, str]:
    """confluent-kafka SchemaRegistryClient settings; `auth` for the stand-in."""
    config = {"url": url}
    if auth:
        config["basic.auth.user.info"] = f"{USER}:{PASSWORD}"
    return config


def registry_catalog(url: str) -> SchemaCatalog:
    """A catalog that reads both framings, for checking Confluent-framed outputs."""
    catalog = SchemaCatalog()
    catalog.attach_registry(ConfluentFraming(RegistryClient(url)))
    return catalog


class TcpForwarder:
    """Forwards connections from 127.0.0.1:`port` to 127.0.0.1:`target`, from the moment it
    is created until close(): a registry that "comes up" only once it already holds the
    schemas a test needs (Apicurio cannot be started with them preloaded)."""

    def __init__(self, port: int, target: int) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:  # the other direction closed both sockets
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()  # idempotent: both pipes of a connection close both sockets

    def close(self) -> None:
        self.server.close()
