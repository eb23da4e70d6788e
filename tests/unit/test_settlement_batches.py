"""Control totals of settlement files (streams/domain/recon/batches.py)."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.common.outputs import AlertOut, Severity
from streams.domain.common.time import Tick
from streams.domain.recon.batches import BatchContext, BatchInput, BatchState, RecordIds, step
from streams.domain.recon.inputs import BatchClosed
from tests.builders import BATCH
from tests.builders import BATCH_DECIDE_AT as DECIDE_AT
from tests.builders import BATCH_T0 as T0
from tests.builders import batch_close as close
from tests.builders import batch_line as line

MINUTE = 60_000
GRACE = 30 * MINUTE
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


class Batch:
    """Feeds one batch's records through `step`, storing the state as JSON in between."""

    def __init__(self) -> None:
        self.state: BatchState | None = None
        self.log: list[AlertOut] = []

    def __call__(self, event: BatchInput | Tick, at: int = T0 + MINUTE) -> list[AlertOut]:
        stored = None if self.state is None else json.dumps(self.state.to_dict())
        state = None if stored is None else BatchState.from_dict(json.loads(stored))
        self.state, alerts = step(state, event, BatchContext(now_ms=at))
        self.log += alerts
        return alerts

    def tick(self, at: int) -> list[AlertOut]:
        return self(Tick(at), at=at)


def run_of(*events: BatchInput) -> Batch:
    batch = Batch()
    for event in events:
        batch(event)
    return batch




def test_a_batch_whose_lines_add_up_raises_nothing() -> None:
    batch = run_of(line(1), line(2), line(3), close())
    assert batch.state is not None and batch.state.wake_at() == DECIDE_AT
    assert batch.tick(DECIDE_AT) == []
    assert batch.state.decided and batch.state.wake_at() is None


def test_a_batch_with_wrong_totals_raises_one_alert_with_both_sides() -> None:
    batch = run_of(line(1), line(2, amount=150), close(line_count=3, total=300))
    assert batch.tick(DECIDE_AT - 1) == []
    [alert] = batch.tick(DECIDE_AT)
    assert (alert.kind, alert.severity, alert.key) == (
        "BATCH_TOTALS_MISMATCH",
        Severity.WARN,
        "BATCH_TOTALS_MISMATCH",
    )
    assert (alert.order_id, alert.provider) == (None, "wechatpay")
    assert alert.details == {
        "batch_id": BATCH,
        "close_record_id": f"{BATCH}:close",
        "merchant_id": "mch-1",
        "covers_until": str(T0),
        "expected_line_count": "3",
        "actual_line_count": "2",
        "expected_total_amount_minor": "300",
        "actual_total_amount_minor": "250",
    }
    # Decided once: neither later ticks nor lines raise it again.
    assert batch.tick(DECIDE_AT + GRACE) == []
    assert batch(line(3, amount=50), at=DECIDE_AT + GRACE) == []
    assert len(batch.log) == 1


def test_lines_that_arrive_after_their_close_but_within_the_grace_complete_it() -> None:
    batch = run_of(line(1), close())
    batch(line(3), at=DECIDE_AT - 2)
    batch(line(2), at=DECIDE_AT - 1)
    assert batch.tick(DECIDE_AT) == []


def test_an_alert_waits_for_any_input_past_the_grace_not_only_a_tick() -> None:
    batch = run_of(line(1), close())
    [alert] = batch(line(2), at=DECIDE_AT)
    assert alert.details["actual_line_count"] == "2"


def test_a_surplus_line_is_a_mismatch_too() -> None:
    batch = run_of(line(1), line(2), line(3), line(4), close())
    [alert] = batch.tick(DECIDE_AT)
    assert (alert.details["expected_line_count"], alert.details["actual_line_count"]) == (
        "3",
        "4",
    )


def test_a_redelivered_line_counts_once() -> None:
    batch = run_of(line(1), line(2), line(2), line(3), line(1), close())
    assert batch.tick(DECIDE_AT) == []


def test_a_close_without_control_totals_compares_nothing() -> None:
    batch = run_of(line(1), close(line_count=None, total=None))
    assert batch.tick(DECIDE_AT) == []


def test_only_the_stated_totals_are_compared() -> None:
    batch = run_of(line(1), line(2), line(3, amount=1), close(line_count=3, total=None))
    assert batch.tick(DECIDE_AT) == []


def test_a_repeated_close_changes_nothing() -> None:
    batch = run_of(line(1), close(line_count=1, total=100))
    batch(close(line_count=5, total=9), at=DECIDE_AT - 1)
    assert batch.tick(DECIDE_AT) == []


def test_the_grace_counts_from_arrival_for_a_file_imported_late() -> None:
    batch = run_of(line(1))
    batch(close(), at=T0 + 10 * GRACE)
    assert batch.state is not None and batch.state.wake_at() == T0 + 11 * GRACE


def test_record_ids_are_kept_as_ranges_of_line_numbers() -> None:
    ids = RecordIds()
    for number in (1, 2, 3, 7, 5, 6, 9, 4):
        ids = ids.add(BATCH, f"{BATCH}:{number}")
    assert ids.ranges == ((1, 7), (9, 9))
    assert ids.contains(BATCH, f"{BATCH}:4") and not ids.contains(BATCH, f"{BATCH}:8")
    # Other forms are kept verbatim; "01" is not line 1.
    ids = ids.add(BATCH, f"{BATCH}:01").add(BATCH, "other:1")
    assert ids.others == {f"{BATCH}:01", "other:1"}
    assert ids.contains(BATCH, f"{BATCH}:01") and not ids.contains(BATCH, f"{BATCH}:10")


def test_a_long_file_keeps_a_small_state() -> None:
    batch = Batch()
    for number in range(1, 2001):
        batch(line(number))
    assert batch.state is not None and batch.state.seen.ranges == ((1, 2000),)
    assert len(json.dumps(batch.state.to_dict())) < 500


def test_the_alert_matches_the_contract_schema() -> None:
    parsed = fastavro.parse_schema(json.loads((SCHEMAS / "Alert.v1.avsc").read_text()))
    [alert] = run_of(line(1), close()).tick(DECIDE_AT)
    assert fastavro.validation.validate(alert.to_record(), parsed, raise_errors=True)


def test_caller_mistakes_raise() -> None:
    ctx = BatchContext(now_ms=T0)
    with pytest.raises(ValueError):
        step(None, Tick(T0), ctx)
    state, _ = step(None, line(1), ctx)
    other = BatchClosed("x:close", "x", "wechatpay", "mch-1", T0, 1, 1, None)
    with pytest.raises(ValueError):
        step(state, other, ctx)
    with pytest.raises(ValueError):
        step(state, Tick(T0 + 1), ctx)


@settings(max_examples=200, deadline=None)
@given(
    order=st.permutations([*[line(n, amount=10 * n) for n in range(1, 7)], close(6, 210)]),
    repeats=st.lists(st.integers(1, 6), max_size=4),
    missing=st.sets(st.integers(1, 6), max_size=2),
)
def test_any_order_of_arrival_before_the_grace_decides_the_same(
    order: list[BatchInput], repeats: list[int], missing: set[int]
) -> None:
    lost = {f"{BATCH}:{n}" for n in missing}
    delivered = [e for e in order if e.record_id not in lost]
    batch = Batch()
    for event in delivered + [line(n, amount=10 * n) for n in repeats if n not in missing]:
        batch(event)
    alerts = batch.tick(DECIDE_AT + GRACE)
    assert len(alerts) == (1 if missing else 0)
    assert batch.tick(DECIDE_AT + 2 * GRACE) == []
