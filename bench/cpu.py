"""Where the machine's cores went over a window, from /proc (Linux only).

Two workers add up only if each gets a core. On a 2-core machine that also runs the
broker and the bench's own writer and reader, the split of CPU time between them says
whether a second worker had a core to use, and whether a worker's main thread (the
Python one, the only one that runs the domain) was short of CPU or waiting.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# /proc/<pid>/stat fields after the command's closing parenthesis start at field 3
# (state); utime and stime are fields 14 and 15.
_UTIME, _STIME = 14 - 3, 15 - 3


def _stat_seconds(path: Path) -> float:
    """User and system CPU seconds of a process (all its threads) or of one thread;
    0 once it has exited."""
    try:
        text = path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[_UTIME]) + int(fields[_STIME])) / CLOCK_TICKS_PER_S


def process_seconds(pid: int) -> float:
    return _stat_seconds(Path(f"/proc/{pid}/stat"))


def main_thread_seconds(pid: int) -> float:
    return _stat_seconds(Path(f"/proc/{pid}/task/{pid}/stat"))


def machine_busy_seconds() -> float:
    """CPU seconds every core spent on anything but idling or waiting for I/O."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = values[3], values[4]
    # guest time is already counted in user time (fields 9 and 10)
    return (sum(values[:8]) - idle - iowait) / CLOCK_TICKS_PER_S


def local_brokers() -> list[int]:
    """Kafka brokers running on this machine (deploy/kafka's, or any other)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in command:
            pids.append(int(entry.name))
    return pids


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far, by pid for the processes named (a process that exits within
    the window is left out of its delta rather than counted as negative)."""

    workers: Mapping[int, float]
    worker_main_threads: Mapping[int, float]
    brokers: Mapping[int, float]
    bench: float
    machine_busy: float

    @classmethod
    def take(cls, worker_pids: Iterable[int], broker_pids: Iterable[int]) -> CpuSample:
        workers = list(worker_pids)
        return cls(workers={pid: process_seconds(pid) for pid in workers},
                   worker_main_threads={pid: main_thread_seconds(pid) for pid in workers},
                   brokers={pid: process_seconds(pid) for pid in broker_pids},
                   bench=process_seconds(os.getpid()),
                   machine_busy=machine_busy_seconds())


def _grown(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    return sum(after[pid] - seconds for pid, seconds in before.items()
               if after.get(pid, 0.0) >= seconds)


def cores_used(before: CpuSample, after: CpuSample, window_s: float) -> dict[str, float]:
    """Cores each part kept busy on average over the window; `other` is what no part
    named here used (other processes on the machine)."""
    if window_s <= 0:
        raise ValueError(f"window must be positive, got {window_s}")
    workers = _grown(before.workers, after.workers) / window_s
    brokers = _grown(before.brokers, after.brokers) / window_s
    bench = (after.bench - before.bench) / window_s
    busy = (after.machine_busy - before.machine_busy) / window_s
    return {
        "cpu_cores": float(len(os.sched_getaffinity(0))),
        "cpu_busy_cores": busy,
        "cpu_workers_cores": workers,
        "cpu_worker_main_threads_cores":
            _grown(before.worker_main_threads, after.worker_main_threads) / window_s,
        "cpu_broker_cores": brokers,
        "cpu_bench_cores": bench,
        "cpu_other_cores": max(0.0, busy - workers - brokers - bench),
    }
