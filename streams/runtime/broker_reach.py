"""Whether the worker's consumer can reach any broker, for /health.

A worker whose broker went away between batches has nothing in hand and no call running,
so neither the stall threshold nor the watchdog sees the outage. librdkafka says so itself:
`_ALL_BROKERS_DOWN` reaches the client's error_cb (it is not returned by poll). Nothing
says when a broker is back, so anything that needed one clears the mark: a record
fetched, a transaction committed, or, on an idle worker, a metadata probe answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaError

PROBE_EVERY_S = 1.0


class BrokerReach:
    def __init__(self, now: Callable[[], float] = time.monotonic):
        self._now = now
        self._lost_since: float | None = None
        self._probed = 0.0

    def on_error(self, error: KafkaError) -> None:
        """The client's error_cb."""
        if error.code() == KafkaError._ALL_BROKERS_DOWN and self._lost_since is None:
            self._lost_since = self._now()

    def heard(self) -> None:
        """A broker answered."""
        self._lost_since = None

    def lost_for(self) -> float | None:
        """Seconds since every broker was lost, or None while one is reachable."""
        return None if self._lost_since is None else self._now() - self._lost_since

    def probe_due(self) -> bool:
        """While lost, at most once per PROBE_EVERY_S: ask a broker whether it is back."""
        if self._lost_since is None or self._now() - self._probed < PROBE_EVERY_S:
            return False
        self._probed = self._now()
        return True
