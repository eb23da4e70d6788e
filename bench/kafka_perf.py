"""The broker's own ceiling, measured with Kafka's perf tools (kafka-producer-perf-test and
kafka-consumer-perf-test) from the very jars deploy/kafka runs the broker from.

Our Python ceiling (bench/ceiling.py) bounds what any Python client gets from the broker;
this bounds what the broker itself gives on the same machine, with the official Java
clients: N fixed-size records (about the size of our Avro records) produced with acks=all
and no throttle to a fresh 4-partition topic, then read back by a consumer group.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

KAFKA_DIR = Path(__file__).resolve().parents[1] / "deploy" / "kafka"
PARTITIONS = 4
TIMEOUT_S = 900
JAVA_OPTS = ["-Xmx512m", "-Djava.awt.headless=true"]

# deploy/kafka/start keeps its jar fetch in a shell function; run exactly that function (its
# cached-jars check included) and print the directory it fills, which env.sh decides.
_FETCH_JARS = """
set -euo pipefail
source "$1/env.sh"
log() { echo "kafka: $*" >&2; }
eval "$(sed -n '/^fetch_jars() {/,/^}/p' "$1/start")"
declare -F fetch_jars >/dev/null || { echo "no fetch_jars() in $1/start" >&2; exit 1; }
fetch_jars
echo "$TOPUP_KAFKA_LIB_DIR"
"""

_PRODUCER_SUMMARY = re.compile(
    r"^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\).*99\.9th", re.M
)


def run_kafka_perf(bootstrap: str, records: int, record_size: int = 600) -> dict[str, float]:
    """Produce `records` records of `record_size` bytes with ProducerPerformance, read them
    back with ConsumerPerformance, and return records/s and MB/s (MiB, as the tools print)
    of each. Consumer rates are the tool's fetch.* figures: the group join is left out, as
    our own benchmark times from the first consumed record."""
    classpath = f"{_jar_dir()}/*"
    topic = f"bench.kafka-perf.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    _create_topic(admin, topic)
    try:
        produced = _java(classpath, [
            "org.apache.kafka.tools.ProducerPerformance", "--bootstrap-server", bootstrap,
            "--topic", topic, "--num-records", str(records), "--record-size", str(record_size),
            "--throughput", "-1", "--command-property", "acks=all",
        ])
        consumed = _java(classpath, [
            "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap,
            "--topic", topic, "--num-records", str(records),
            "--group", f"bench-kafka-perf-{uuid.uuid4().hex[:8]}", "--timeout", "60000",
        ])
    finally:
        for future in admin.delete_topics([topic], request_timeout=30).values():
            future.result()
    return {**_producer_rates(produced, records), **_consumer_rates(consumed, records)}


def _jar_dir() -> str:
    result = subprocess.run(["bash", "-c", _FETCH_JARS, "fetch", str(KAFKA_DIR)],
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError(f"fetching the Kafka jars failed:\n{_tail(result.stderr)}")
    return result.stdout.strip().splitlines()[-1]


def _create_topic(admin: AdminClient, topic: str, timeout_s: float = 30) -> None:
    """Create the topic and wait until every partition has a leader: producing into a topic
    still being created can fail the idempotent producer (out-of-order sequence)."""
    new = NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)
    admin.create_topics([new], request_timeout=timeout_s)[topic].result()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=10).topics.get(topic)
        if meta and not meta.error and len(meta.partitions) == PARTITIONS and all(
            p.leader >= 0 for p in meta.partitions.values()
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"topic {topic} has no leader for every partition after {timeout_s}s")


def _java(classpath: str, args: list[str]) -> str:
    """Run one tool; its stdout, or a RuntimeError with the tail of its stderr."""
    command = ["java", *JAVA_OPTS, "-cp", classpath, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} exited with {result.returncode}:\n"
                           f"{_tail(result.stderr or result.stdout)}")
    return result.stdout + "\n" + result.stderr


def _producer_rates(output: str, records: int) -> dict[str, float]:
    # The summary line is the last one with percentiles; failed sends are not counted in it
    # (the tool prints their exceptions and still exits 0).
    summaries = _PRODUCER_SUMMARY.findall(output)
    if not summaries or int(summaries[-1][0]) != records:
        raise RuntimeError(f"ProducerPerformance did not send all {records} records:\n"
                           f"{_tail(output)}")
    _, records_per_s, mb_per_s = summaries[-1]
    return {"producer_records_per_s": float(records_per_s),
            "producer_mb_per_s": float(mb_per_s)}


def _consumer_rates(output: str, records: int) -> dict[str, float]:
    # A header line of comma-separated names, then one line of values.
    lines = output.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("start.time")), None)
    if header is None or header + 1 >= len(lines):
        raise RuntimeError(f"no ConsumerPerformance stats in its output:\n{_tail(output)}")
    stats = dict(zip(lines[header].split(", "), lines[header + 1].split(", "), strict=False))
    if int(stats.get("data.consumed.in.nMsg", "0")) < records:
        raise RuntimeError(f"ConsumerPerformance did not read all {records} records:\n"
                           f"{_tail(output)}")
    return {"consumer_records_per_s": float(stats["fetch.nMsg.sec"]),
            "consumer_mb_per_s": float(stats["fetch.MB.sec"])}


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
