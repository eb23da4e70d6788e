"""Broker set-up for tests and benchmarks, kept out of the production package: it deletes
every topic on the broker it is pointed at."""

from __future__ import annotations

import time

from confluent_kafka import KafkaException

from streams.admin import admin_client, create_topics
from streams.config import Settings
from streams.topics import TOPICS


def recreate_topics(settings: Settings, timeout_s: float = 60.0) -> None:
    """Drop every non-internal topic (the contract's, the workers' changelogs) and recreate the
    contract's: a clean slate for tests and benchmarks on a broker of their own."""
    admin = admin_client(settings)
    deadline = time.monotonic() + timeout_s
    names = [n for n in admin.list_topics(timeout=10).topics if not n.startswith("__")]
    if names:
        for future in admin.delete_topics(names, request_timeout=30).values():
            future.result()
    while any(n in names for n in admin.list_topics(timeout=10).topics):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics still present after {timeout_s}s")
        time.sleep(0.2)
    while True:
        try:
            create_topics(settings)
            break
        except KafkaException:
            # A just-deleted topic can briefly refuse re-creation.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    # A created topic can be missing from the broker's metadata for a moment (seen on a
    # loaded machine): callers list it straight away.
    while missing := sorted({spec.name for spec in TOPICS}
                            - set(admin.list_topics(timeout=10).topics)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"created topics not in the metadata after {timeout_s}s: "
                               f"{missing}")
        time.sleep(0.2)
