"""Which partition owns a key, as Kafka's default (murmur2) partitioner decides."""

from __future__ import annotations

from aiokafka.partitioner import murmur2

# librdkafka's default partitioner hashes with CRC32; aiokafka and the Java
# clients use murmur2. Producers feeding a co-partitioned topology must agree with them.
PARTITIONER = "murmur2_random"


def partition_for(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
