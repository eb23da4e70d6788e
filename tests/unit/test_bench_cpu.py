"""bench/cpu.py reads /proc: a busy thread shows up in its process's CPU, and the window's
cores are split by process with the remainder as `other`."""

from __future__ import annotations

import os
import time

import pytest

from bench.cpu import CpuSample, cores_used, machine_busy_seconds, process_seconds


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_busy_process_is_counted_in_its_own_cpu_and_the_machines():
    process_before, machine_before = process_seconds(os.getpid()), machine_busy_seconds()
    _spin(0.3)
    # Clock ticks are 10 ms: allow two of them either way.
    assert process_seconds(os.getpid()) - process_before >= 0.28
    assert machine_busy_seconds() - machine_before >= 0.28


def test_an_exited_process_counts_as_no_cpu():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert process_seconds(pid) == 0.0


def test_cores_split_by_part_and_the_rest_is_other():
    before = CpuSample(workers={1: 6, 2: 4}, worker_main_threads={1: 5, 2: 3}, brokers={9: 5},
                       bench=1, machine_busy=20)
    after = CpuSample(workers={1: 8, 2: 5}, worker_main_threads={1: 6, 2: 4}, brokers={9: 6},
                      bench=1.5, machine_busy=25.5)
    cores = cores_used(before, after, window_s=2.0)
    assert cores["cpu_workers_cores"] == 1.5
    assert cores["cpu_worker_main_threads_cores"] == 1.0
    assert cores["cpu_broker_cores"] == 0.5
    assert cores["cpu_bench_cores"] == 0.25
    assert cores["cpu_busy_cores"] == 2.75
    assert cores["cpu_other_cores"] == pytest.approx(0.5)


def test_a_process_that_exits_within_the_window_is_left_out_not_subtracted():
    before = CpuSample(workers={}, worker_main_threads={}, brokers={8: 100, 9: 5}, bench=0,
                       machine_busy=0)
    # Broker 8 exited: its stat reads as 0 seconds.
    after = CpuSample(workers={}, worker_main_threads={}, brokers={8: 0, 9: 6}, bench=0,
                      machine_busy=2)
    assert cores_used(before, after, window_s=1.0)["cpu_broker_cores"] == 1.0


def test_an_empty_window_is_refused():
    sample = CpuSample(workers={}, worker_main_threads={}, brokers={}, bench=0, machine_busy=0)
    with pytest.raises(ValueError, match="window must be positive"):
        cores_used(sample, sample, window_s=0)
