"""Which partition numbers a worker may process: those it holds on every topic it reads.

Stages join by partition number across their inputs and store changelogs (layout.py).
An incremental rebalance (KIP-848) hands partitions over as their former owner releases
them, so a worker can hold partition p of one topic while p of another is still owned,
and processed, elsewhere. Handling either half would split one join, and one store
partition, across two workers. So a partition number is *complete* only when every
subscribed topic's p is held here: only then are its stores restored and its records
handled. A held half waits, paused, for the rest.
"""

from __future__ import annotations

from collections.abc import Iterable

TopicPartitionKey = tuple[str, int]


class Holdings:
    """The topic partitions the group protocol gave this worker, grouped by number."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = frozenset(topics)
        self._held: dict[int, set[str]] = {}

    def add(self, tps: Iterable[TopicPartitionKey]) -> set[int]:
        """Records an assignment; returns the numbers it made complete."""
        before = self.complete()
        for topic, partition in tps:
            self._held.setdefault(partition, set()).add(topic)
        return self.complete() - before

    def remove(self, tps: Iterable[TopicPartitionKey]) -> set[int]:
        """Records a revocation; returns the numbers that stopped being complete."""
        before = self.complete()
        for topic, partition in tps:
            topics = self._held.get(partition)
            if topics is not None:
                topics.discard(topic)
                if not topics:
                    del self._held[partition]
        return before - self.complete()

    def clear(self) -> None:
        self._held.clear()

    def complete(self) -> set[int]:
        return {p for p, topics in self._held.items() if topics >= self.topics}

    def partial(self) -> set[int]:
        return {p for p, topics in self._held.items() if not topics >= self.topics}

    def is_complete(self, partition: int) -> bool:
        topics = self._held.get(partition)
        return topics is not None and topics >= self.topics

    def held(self, partitions: Iterable[int]) -> list[TopicPartitionKey]:
        """Every held topic partition of these numbers."""
        return sorted((topic, p) for p in set(partitions) for topic in self._held.get(p, ()))
