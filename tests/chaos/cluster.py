"""A production-like Kafka cluster for the chaos tests that stop brokers: three KRaft
nodes, RF 3, min.insync.replicas 2 (deploy/kafka/cluster), on ports of its own above the
session broker's, so the rest of the suite never sees it."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from tests.kafka_harness import KAFKA_DIR, TEST_PORT

CLUSTER_PORT = TEST_PORT + 10
NODES = (1, 2, 3)


class Cluster:
    def __init__(self, data_dir: Path) -> None:
        self.env = dict(os.environ, TOPUP_KAFKA_PORT=str(CLUSTER_PORT),
                        TOPUP_KAFKA_NODES=str(len(NODES)), TOPUP_KAFKA_DATA_DIR=str(data_dir),
                        TOPUP_KAFKA_HEAP=os.environ.get("TOPUP_KAFKA_HEAP", "384m"))
        self.bootstrap = ""

    def start(self) -> None:
        self.bootstrap = self._run("start").splitlines()[-1]

    def stop(self) -> None:
        self._run("stop")

    def stop_nodes(self, nodes: list[int]) -> None:
        """Together, as a rack or zone going away (each a controlled shutdown)."""
        self._together("stop-node", nodes)

    def start_nodes(self, nodes: list[int]) -> None:
        self._together("start-node", nodes)

    def hanging_transactions(self) -> str:
        return hanging_transactions(self.bootstrap, NODES)

    def _run(self, *args: str) -> str:
        result = subprocess.run([str(KAFKA_DIR / "cluster"), *args], env=self.env,
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"deploy/kafka/cluster {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout.strip()

    def _together(self, command: str, nodes: list[int]) -> None:
        procs = [subprocess.Popen([str(KAFKA_DIR / "cluster"), command, str(n)],
                                  env=self.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for n in nodes]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"cluster {command} failed: {err}"


def hanging_transactions(bootstrap: str, nodes: tuple[int, ...]) -> str:
    """Kafka's own search (kafka-transactions.sh find-hanging) on every node: transactions
    open on a partition past a minute that their coordinator does not know as open."""
    lib = os.environ.get("TOPUP_KAFKA_LIB_DIR", str(KAFKA_DIR / ".lib"))
    found = []
    for node in nodes:
        result = subprocess.run(
            ["java", "-cp", f"{lib}/*",
             f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}",
             f"-Dkafka.logs.dir={tempfile.gettempdir()}",
             "org.apache.kafka.tools.TransactionsCommand", "--bootstrap-server", bootstrap,
             "find-hanging", "--broker-id", str(node), "--max-transaction-timeout", "1"],
            capture_output=True, text=True, timeout=120, check=True)
        found += result.stdout.strip().splitlines()[1:]  # the first line is a header
    return "\n".join(found)
