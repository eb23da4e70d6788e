"""The state-size benchmark's tiny run: what it reports is what the stores hold."""

from __future__ import annotations

from bench.state_size import run_state_size


def test_state_size_reports_what_the_bounds_keep() -> None:
    figures = run_state_size(40)
    # Every order is held once, while it is young...
    assert figures["order-state keys_per_order"] == 1
    assert figures["recon-state keys_per_order"] == 1
    assert figures["bytes_per_order"] > 1_000
    # ...and nothing of it is left once event time passed every retention, but what the
    # bounds keep for good: a balance per account, dedup ids until RocksDB's TTL.
    for store in ("order-state", "recon-state"):
        assert figures[f"{store} keys_after_retention"] == 0
    assert figures["balances keys_after_retention"] == figures["balances keys_per_order"] * 40
    assert figures["bytes_per_order_after_retention"] < figures["bytes_per_order"] / 5
