"""A test hook: kill this process (SIGKILL, no cleanup) at a named point of a batch.

`TOPUP_TEST_KILL_AT` names the point ("after_commit": the transaction committed, no local
write yet; "during_local_write": one store partition written, the others not) and
`TOPUP_TEST_KILL_AFTER_BATCHES` how many batches reach it first (default 1). Unset in
production, where `reached` is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal

AFTER_COMMIT = "after_commit"
DURING_LOCAL_WRITE = "during_local_write"

_point = os.environ.get("TOPUP_TEST_KILL_AT")
_remaining = int(os.environ.get("TOPUP_TEST_KILL_AFTER_BATCHES", "1"))


def reached(point: str) -> None:
    global _remaining
    if _point != point:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
