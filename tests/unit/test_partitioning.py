"""Our murmur2 must be the Java client's: it finds the partition that owns a key."""

from hypothesis import given
from hypothesis import strategies as st

from streams.partitioning import murmur2, partition_for


def test_known_values_of_the_java_client():
    # From Kafka's UtilsTest.testMurmur2.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=64))
def test_partition_is_never_out_of_range(key, partitions):
    assert 0 <= partition_for(key, partitions) < partitions

