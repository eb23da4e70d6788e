"""Which partition owns a key, as Kafka's default (murmur2) partitioner decides."""

from __future__ import annotations

import struct

# librdkafka's default partitioner hashes with CRC32; aiokafka and the Java
# clients use murmur2. Producers feeding a co-partitioned topology must agree with them.
PARTITIONER = "murmur2_random"

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), unsigned.

    Hashed for every observation a risk check sends, so the 4-byte words are unpacked in
    one call rather than assembled byte by byte (as aiokafka's, the tests' oracle, does)."""
    length = len(data)
    words = length // 4
    h = _SEED ^ length
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = data[words * 4:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
