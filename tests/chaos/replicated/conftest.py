"""The tests that stop brokers run here, on the cluster (tests/chaos/cluster.py) rather than
the session's single broker."""

from __future__ import annotations

import pytest

from tests.chaos.cluster import Cluster


@pytest.fixture(scope="module")
def kafka_replication_factor() -> int:
    """Every topic on all three brokers, as in production: a stopped broker takes no
    partition offline (a partition without a leader can hang a transaction)."""
    return 3


@pytest.fixture(scope="module")
def kafka_bootstrap(kafka_cluster: Cluster) -> str:
    return kafka_cluster.bootstrap
