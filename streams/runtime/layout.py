"""The topic layout a worker needs: every co-partitioned topic with one partition count.

Stages join by partition number across their inputs, internal topics and store
changelogs; a topic with another count silently breaks those joins (a key hashes to
another partition there), so the worker refuses to start instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class TopicLayoutError(Exception):
    """Co-partitioned topics disagree on their partition count, or one is missing."""


def check_copartitioned(counts: Mapping[str, int | None], expected: int) -> None:
    """`counts`: each co-partitioned topic's partition count (None: it does not exist).
    Raises TopicLayoutError naming every topic that differs from `expected`."""
    missing = sorted(name for name, count in counts.items() if count is None)
    wrong = sorted((name, count) for name, count in counts.items()
                   if count is not None and count != expected)
    if not missing and not wrong:
        return
    parts = [f"{name} has {count}" for name, count in wrong]
    parts += [f"{name} does not exist" for name in missing]
    raise TopicLayoutError(
        f"co-partitioned topics must all have {expected} partitions (TOPUP_PARTITIONS): "
        + "; ".join(parts)
        + ". Recreate or repartition them; the worker will not start on this layout."
    )


def partition_counts(
    metadata_topics: Mapping[str, object], names: Iterable[str]
) -> dict[str, int | None]:
    """Partition counts from an AdminClient/Consumer `list_topics().topics` mapping."""
    counts: dict[str, int | None] = {}
    for name in names:
        topic = metadata_topics.get(name)
        counts[name] = None if topic is None else len(topic.partitions)  # type: ignore[attr-defined]
    return counts
