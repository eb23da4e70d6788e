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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx2

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
# confluent-kafka's client waits forever by default: a registry that accepts a connection and
# never answers (seen once in CI, on a freshly started Apicurio) hung a test for 600 s.
REQUEST_TIMEOUT_S = 15
T = TypeVar("T")


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


def sr_config(url: str, auth: bool = False) -> dict[str, str | float]:
    """confluent-kafka SchemaRegistryClient settings; `auth` for the stand-in."""
    config: dict[str, str | float] = {"url": url, "timeout": REQUEST_TIMEOUT_S}
    if auth:
        config["basic.auth.user.info"] = f"{USER}:{PASSWORD}"
    return config


def retrying(call: Callable[[], T], deadline_s: float = 120) -> T:
    """`call` again while the registry does not answer (a timeout or a dropped connection),
    up to a deadline: the setup of a test, not what it checks."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return call()
        except httpx2.TransportError:
            if time.monotonic() > deadline:
                raise


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
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:  # the target is gone: refuse rather than hold the connection
                client.close()
                continue
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
        # close() alone would not wake the accept() above, and the port would go on listening.
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
