from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import recreate_topics as reset_topics
from tests.kafka_harness import TEST_PORT, WorkerFactory, settings_from, start_broker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    # A test that needs Kafka and finds none starts one; if that fails, the test fails.
    return start_broker()


@pytest.fixture(scope="session")
def kafka_replication_factor() -> int:
    """Of every topic a test creates; modules on a cluster of their own override it."""
    return 1


@pytest.fixture
def kafka_env(kafka_bootstrap: str, kafka_replication_factor: int,
              tmp_path: Path) -> dict[str, str]:
    """Environment for one test: its own app id (consumer group, changelogs) and topics."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("TOPUP_", "KAFKA_"))
    }
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        TOPUP_APP_ID=f"topup-test-{uuid.uuid4().hex[:8]}",
        TOPUP_PARTITIONS="4",
        TOPUP_STATE_DIR=str(tmp_path / "state"),
        TOPUP_REPLICATION_FACTOR=str(kafka_replication_factor),
    )
    reset_topics(settings_from(env))
    return env


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def workers(
    kafka_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(kafka_env, tmp_path)
    yield factory
    factory.stop_all()
    if request.node.stash.get(CALL_FAILED, False):
        # CI keeps only pytest's output: a failure carries what its workers last said.
        for worker in factory.started:
            print(f"--- {worker.log_path.name} (last lines) ---")
            print(worker.log_tail())


def pytest_report_header() -> str:
    return f"kafka: test broker on 127.0.0.1:{TEST_PORT} via deploy/kafka"
