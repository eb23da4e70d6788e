"""The worker's local state directory and the rule for trusting it after a restart.

RocksDB is written as events are processed, before their transaction commits. After a
crash it can hold writes whose changelog records were aborted, state the committed
outputs never saw. Like Kafka Streams under exactly-once, a worker that did not stop
cleanly discards its local state and restores it from the changelogs, which hold only
committed writes (read with read_committed).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

CLEAN_MARKER = ".clean-shutdown"


def open_state_dir(state_dir: Path) -> None:
    """Call before the worker starts: wipe the state unless the last stop was clean."""
    marker = state_dir / CLEAN_MARKER
    if marker.exists():
        # Consumed now, so that a crash of this run is not mistaken for a clean stop.
        marker.unlink()
        return
    if state_dir.exists() and any(state_dir.iterdir()):
        log.warning(
            "%s was not closed cleanly: discarding it, tables restore from their changelogs",
            state_dir,
        )
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)


def close_state_dir(state_dir: Path) -> None:
    """Call after a clean stop, when every table has been flushed and closed."""
    (state_dir / CLEAN_MARKER).touch()
