from streams.web import RateLimiter


def test_bursts_up_to_the_limit_then_refills_at_the_rate():
    limiter = RateLimiter(rate=2, burst=3)
    assert [limiter.allow("ip", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("ip", 0.49) is False
    assert limiter.allow("ip", 0.5) is True  # one token after half a second at 2/s
    assert limiter.allow("other-ip", 0.5) is True  # buckets are per address


def test_memory_stays_bounded_under_many_addresses():
    limiter = RateLimiter(rate=1, burst=1)
    limiter.MAX_TRACKED = 100
    for i in range(1_000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(limiter._buckets) <= 100
