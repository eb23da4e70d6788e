"""Where the worker's time goes: py-spy samples of one topology run, summed by function."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.topology import run_topology

OURS = "streams/"


def _frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    return stack.split(";"), int(count)


def summarize(raw: str, top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """Self time by function, and inclusive time of our own functions, as shares."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    # Only newlines end a sample: splitlines() would also split at characters a frame
    # name may hold.
    for line in raw.split("\n"):
        if not line.strip():
            continue
        frames, count = _frames(line)
        total += count
        own[frames[-1]] += count
        for frame in {f for f in frames if OURS in f}:
            inclusive[frame] += count
    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(frame, n / total) for frame, n in counter.most_common(top)]
    return {"self": shares(own), "inclusive_ours": shares(inclusive)}


def profile_topology(bootstrap: str, orders: int) -> dict[str, list[tuple[str, float]]]:
    beside = Path(sys.executable).with_name("py-spy")
    py_spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("py-spy is not installed: pip install -e '.[bench]'")
    out = Path(tempfile.mkdtemp(prefix="bench-profile-")) / "samples.txt"
    run_topology(bootstrap, orders,
                 wrap=[py_spy, "record", "--format", "raw", "--rate", "200", "--nonblocking",
                       "-o", str(out), "--"])
    return summarize(out.read_text())
