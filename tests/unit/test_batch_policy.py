"""The batch policy caps a batch at what fits the latency target, within its bounds."""

from streams.runtime.batch_policy import MIN_RECORDS, BatchPolicy


def test_no_target_takes_the_maximum() -> None:
    policy = BatchPolicy(max_records=2000, target_s=0)
    policy.observed(records=100, handle_s=1.0, commit_s=0.05)
    assert policy.limit() == 2000


def test_before_any_batch_the_maximum() -> None:
    assert BatchPolicy(max_records=2000, target_s=0.1).limit() == 2000


def test_cap_leaves_room_for_the_commit() -> None:
    policy = BatchPolicy(max_records=2000, target_s=0.1)
    # 1 ms a record, 20 ms a commit: 80 records fit in 100 ms.
    policy.observed(records=100, handle_s=0.1, commit_s=0.02)
    assert policy.limit() == 80


def test_cap_never_below_the_floor_nor_above_the_maximum() -> None:
    slow = BatchPolicy(max_records=2000, target_s=0.1)
    slow.observed(records=10, handle_s=1.0, commit_s=0.5)
    assert slow.limit() == MIN_RECORDS
    fast = BatchPolicy(max_records=2000, target_s=0.1)
    fast.observed(records=1000, handle_s=0.001, commit_s=0.001)
    assert fast.limit() == 2000


def test_averages_follow_a_change_of_cost() -> None:
    policy = BatchPolicy(max_records=10_000, target_s=1.0)
    policy.observed(records=100, handle_s=0.1, commit_s=0.0)
    first = policy.limit()
    for _ in range(30):
        policy.observed(records=100, handle_s=0.2, commit_s=0.0)
    assert first == 1000
    assert 500 <= policy.limit() < 510
