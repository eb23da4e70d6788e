"""Store partitions kept on disk after they were closed, removed when not reopened in time.

A revoked store partition is kept so a restart or a rebalance that hands it back restores
only its changelog's tail; one that stays away longer than the delay is dead weight (and
stale), so its directory goes.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class ClosedStores:
    def __init__(self, state_dir: Path, delay_s: float) -> None:
        self.state_dir, self.delay_s = state_dir, delay_s
        self._since: dict[Path, float] = {}
        self._adopted = False
        # Store partitions a standby (another thread) holds open: never removed under it.
        self._held: set[Path] = set()
        self._lock = threading.Lock()

    def hold(self, path: Path) -> None:
        """Before a standby opens `path`: a removal cannot happen from now on."""
        with self._lock:
            self._held.add(path)

    def unhold(self, path: Path, now: float) -> None:
        """After a standby closed `path`: its delay starts afresh."""
        with self._lock:
            self._held.discard(path)
            self._since[path] = now

    def closed(self, path: Path, now: float) -> None:
        with self._lock:
            self._since[path] = now

    def reopened(self, path: Path) -> None:
        with self._lock:
            self._since.pop(path, None)

    def adopt_leftovers(self, open_paths: list[Path], now: float) -> None:
        """Once, at the first assignment: directories an earlier run left that are not
        open now start their delay too (<state_dir>/<store>/<partition>)."""
        if self._adopted:
            return
        self._adopted = True
        open_now = set(open_paths)
        with self._lock:
            for path in self.state_dir.glob("*/*"):
                if path.is_dir() and path not in open_now:
                    self._since.setdefault(path, now)

    def remove_expired(self, now: float) -> None:
        with self._lock:
            self._remove_expired(now)

    def _remove_expired(self, now: float) -> None:
        for path, since in list(self._since.items()):
            if path in self._held:
                continue
            if now - since >= self.delay_s:
                del self._since[path]
                log.info("removing store partition %s: not reassigned within %ss",
                         path, self.delay_s)
                shutil.rmtree(path, ignore_errors=True)
