"""The topics the runtime writes for itself, beside the stages' outputs: its ticks and the
repartition topics of keyed inputs. The application lists them with its own topics
(streams/topics.py) so `topup-guard topics create` makes them too."""

from __future__ import annotations

INTERNAL_PREFIX = "topup.internal."
# The runtime's event-time ticks for partitions without input (streams/runtime/ticks.py).
TICKS = f"{INTERNAL_PREFIX}ticks"


def repartition_topic(topic: str) -> str:
    """The internal topic a keyed input's misplaced records are forwarded through."""
    return f"{INTERNAL_PREFIX}{topic.removeprefix('topup.')}-repartition"


def is_internal(topic: str) -> bool:
    """A topic only this application reads: created by the worker that reads it."""
    return topic.startswith(INTERNAL_PREFIX)
