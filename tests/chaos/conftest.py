from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.cluster import Cluster


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Started once for the modules that stop brokers; they override kafka_bootstrap."""
    cluster = Cluster(tmp_path_factory.mktemp("kafka-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()
