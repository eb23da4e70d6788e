"""The partition of a key must be the Java client's: it finds the worker that owns it."""

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from streams.partitioning import murmur2, partition_for

# Signed murmur2 values from Kafka's UtilsTest.testMurmur2; Java takes toPositive(h) % n.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "java_hash"), JAVA_MURMUR2.items())
def test_partitions_are_the_java_clients(key, java_hash):
    for partitions in (1, 4, 7, 1000):
        assert partition_for(key, partitions) == (java_hash & 0x7FFFFFFF) % partitions


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=64))
def test_partition_is_never_out_of_range(key, partitions):
    assert 0 <= partition_for(key, partitions) < partitions


@given(st.binary(max_size=200))
def test_murmur2_is_aiokafkas_for_any_bytes(key):
    """Every length mod 4 and every byte value: the tail and the word unpacking."""
    assert murmur2(key) == aiokafka_murmur2(key)
