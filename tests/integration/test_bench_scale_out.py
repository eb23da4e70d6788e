"""bench/scale_out.py's measure on a made-up log: which partitions stayed, which moved, and
the longest gap between batches handling each (the run itself is bench-only: minutes)."""

from __future__ import annotations

from bench.scale_out import _gaps, _summary


def processed(t: float, pid: int, *partitions: int) -> dict:
    return {"t": t, "pid": pid, "event": "processed", "tps": [["o", p] for p in partitions]}


def test_a_stop_is_the_longest_gap_and_a_move_is_told_from_a_stay():
    log = [processed(t / 10, 1, 0, 1, 2) for t in range(10)]  # every 0.1 s until 0.9
    log += [{"t": 1.0, "pid": 2, "event": "assigned", "tps": [["o", 2]]},
            {"t": 1.0, "pid": 1, "event": "assigned", "tps": []},
            processed(1.6, 1, 0), processed(1.2, 1, 1), processed(2.5, 2, 2),
            processed(3.0, 1, 0, 1), processed(3.0, 2, 2)]
    gaps = _gaps(log, start=1.0, end=2.8)
    assert gaps[0] == ("stayed", gaps[0][1]) and round(gaps[0][1], 3) == 1.4
    assert gaps[1][0] == "stayed" and round(gaps[1][1], 3) == 1.8
    assert gaps[2][0] == "moved" and round(gaps[2][1], 3) == 1.6
    # A worker handed partitions in the span restores them on its thread: told apart.
    log.append({"t": 1.1, "pid": 1, "event": "assigned", "tps": [["o", 3]]})
    assert _gaps(log, 1.0, 2.8)[0][0] == "stayed, took"
    summary = _summary(_gaps(log, 1.0, 2.8))
    assert summary["moved"] == 1.0 and round(summary["moved max s"], 3) == 1.6
    assert round(summary["stayed, took max s"], 3) == 1.8 and summary["stayed max s"] == 0.0
