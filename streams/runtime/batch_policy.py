"""How many records the next transaction takes: as many as have arrived, up to a cap that
keeps one batch's handling and commit within a latency target.

Every hop between stages waits for the batch in hand to be handled and committed, so
a batch that takes a second adds a second per hop. Under moderate load the fetched queue
is short and batches stay small on their own; under a burst it can hold thousands of
records. The cap is the number of records the target leaves room for once a commit is
paid, from running averages of what a record and a commit cost here, and never less than
`MIN_RECORDS`, so a slow commit cannot shrink batches into more commits and a backlog.
A target of 0 turns the policy off: every batch may take `max_records`.
"""

from __future__ import annotations

# A floor on the cap, so the commit's fixed cost stays amortized over some records.
MIN_RECORDS = 50
# Weight of the newest batch in the running averages: recent enough to follow a change
# of load, smooth enough that one slow batch (a GC pause) does not halve the next.
SMOOTHING = 0.2


class BatchPolicy:
    def __init__(self, max_records: int, target_s: float) -> None:
        self.max_records = max_records
        self.target_s = target_s
        self._per_record_s: float | None = None
        self._commit_s = 0.0

    def limit(self) -> int:
        """Most records the next batch may take."""
        if self.target_s <= 0 or self._per_record_s is None or self._per_record_s <= 0:
            return self.max_records
        room = (self.target_s - self._commit_s) / self._per_record_s
        return max(min(MIN_RECORDS, self.max_records), min(self.max_records, int(room)))

    def observed(self, records: int, handle_s: float, commit_s: float) -> None:
        """One committed batch: `records` handled in `handle_s`, committed in `commit_s`."""
        if records <= 0:
            return
        per_record = handle_s / records
        if self._per_record_s is None:
            self._per_record_s, self._commit_s = per_record, commit_s
            return
        self._per_record_s += SMOOTHING * (per_record - self._per_record_s)
        self._commit_s += SMOOTHING * (commit_s - self._commit_s)
