"""The topology's own work without Kafka: every stage, in this process, over the same records.

The input records are read once from the pre-produced topics. Then they are piped through
streams.runtime.testing.TopologyTestDriver: each batch is handled by the worker's own code
(`Worker.handle_batch`, its stages, contexts and stores, up to `batch_max_records`
records): what a stage sends to a topic the worker consumes comes back in a later batch,
on the partition Kafka's partitioner picks, and the batch's state writes are encoded and
applied to the RocksDB stores as after a commit. Nothing is produced and nothing committed.

So the rate is what the domain and state cost on their own: its gap to the topology is what
Kafka and transactions cost, and its ratio to the ceiling bounds what any runtime could
reach with this domain in Python on one core. `python -m bench.domain_only` runs it in a
process of its own, as the worker would be.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer

from bench.ceiling import RECORD_OF
from bench.worker_process import RULES
from bench.workload import SECRET
from streams import topics
from streams.codecs import default_catalog
from streams.config import load_settings
from streams.metrics import Metrics
from streams.runtime.context import Record
from streams.runtime.testing import TopologyTestDriver
from streams.runtime.worker import GC_THRESHOLD, record_of
from streams.topology import all_stages
from streams.worker_config import runtime_config


def read_inputs(bootstrap: str, expected: int, timeout_s: float = 300) -> list[Record]:
    """The pre-produced input records in the order they were produced: each order, then its
    callback. One consumer hands over a whole topic's fetch before the other's, and in this
    process that would run every callback before its order: every payment held until its
    order came, a path the Kafka-driven topology, which interleaves the topics' fetches,
    rarely takes."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-domain-{uuid.uuid4().hex[:8]}",
        "isolation.level": "read_committed", "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe(list(RECORD_OF))
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"domain-only: read {len(records)} of {expected} inputs")
            records += [record_of(message) for message in consumer.consume(10_000, 0.5)
                        if message.error() is None]
        return sorted(records, key=lambda record: (record.key, record.topic != topics.ORDERS))
    finally:
        consumer.close()


def in_process_topology(bootstrap: str, state_dir: Path, metrics: Metrics | None = None,
                        retain_outputs: bool = False) -> TopologyTestDriver:
    """The worker's stages and stores, fed batches by hand instead of by Kafka; what they
    send is counted, and kept only with `retain_outputs`."""
    settings = load_settings({
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPUP_STATE_DIR": str(state_dir),
        "TOPUP_HMAC_SECRETS": SECRET, "TOPUP_RISK_RULES": str(RULES),
    })
    catalog, metrics = default_catalog(), metrics or Metrics()
    # Kafka's CreateTime: the wall clock when a record is sent.
    stages = all_stages(settings, catalog, metrics)
    return TopologyTestDriver(runtime_config(settings), stages, catalog,
                              metrics, create_time=lambda _: int(time.time() * 1000),
                              retain_outputs=retain_outputs)


def run_domain_only(bootstrap: str, orders: int) -> float:
    """Seconds to handle every input of `orders` orders and all they lead to, in process."""
    inputs = read_inputs(bootstrap, 2 * orders)
    gc.set_threshold(*GC_THRESHOLD)
    return seconds_to_pipe(in_process_topology(
        bootstrap, Path(tempfile.mkdtemp(prefix="bench-domain-"))), inputs, orders)


def seconds_to_pipe(topology: TopologyTestDriver, inputs: list[Record], orders: int,
                    clock: Callable[[], float] = time.monotonic) -> float:
    """Seconds (of `clock`) the topology takes over `inputs`, checked: every order credited."""
    try:
        started = clock()
        topology.pipe_records(inputs)
        seconds = clock() - started
    finally:
        topology.close()
    credits = topology.sent.get(topics.CREDITS, 0)
    if credits != orders:
        raise RuntimeError(f"domain-only: {credits} credits for {orders} orders")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.domain_only", description=__doc__)
    parser.add_argument("bootstrap")
    parser.add_argument("orders", type=int)
    args = parser.parse_args()
    print(json.dumps({"seconds": run_domain_only(args.bootstrap, args.orders)}))


if __name__ == "__main__":
    main()
