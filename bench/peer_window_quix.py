"""Issue 19's windowed peer benchmark, their side: bench/window_step.py's step in Quix Streams.

Written the way Quix Streams' docs show windowed aggregations: an Application with
exactly-once processing, event time taken from the attempt by the topic's
timestamp_extractor, one `group_by` per dimension (each re-keys through its own
repartition topic), and on each of those one `tumbling_window(size, grace_ms).count()
.current()` per window size, every result sent to the output topic tagged with its
dimension. The window stores are Quix's default RocksDB ones.

Run by .venv-quix's python (see bench/peer_quix.py): nothing here may import `streams` or
`bench`, so the semantics' constants are repeated here and checked equal by the harness.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

DIMENSIONS = (("user", "user_id"), ("device", "device_id"), ("ip", "ip"),
              ("card", "card_token"), ("merchant", "merchant_id"))
WINDOWS_MS = (60_000, 600_000, 3_600_000)
GRACE_MS = 30 * 24 * 3_600_000
# Records per transaction, as our Worker's batch (see bench/peer_quix.py).
COMMIT_EVERY = 500


def run_app(bootstrap: str, input_topic: str, output_topic: str, group: str, state_dir: Path,
            started_file: Path) -> None:
    """The windowed step in Quix Streams, until SIGTERM or SIGINT."""
    from quixstreams import Application

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_every=COMMIT_EVERY,
        state_dir=state_dir,
        loglevel="WARNING",
    )
    first = [True]

    def event_time(value: Any, headers: Any, timestamp: float, timestamp_type: Any) -> int:
        if first[0]:
            # The timing starts at the first record handed to the step, as on our side.
            first[0] = False
            started_file.write_text(repr(time.monotonic()))
        return int(value["occurred_at"])

    attempts = app.topic(input_topic, value_deserializer="json", timestamp_extractor=event_time)
    results = app.topic(output_topic, key_serializer="string", value_serializer="json")

    sdf = app.dataframe(attempts)
    for dimension, attribute in DIMENSIONS:
        by_dimension = sdf.group_by(attribute)
        for size in WINDOWS_MS:
            window = by_dimension.tumbling_window(size, grace_ms=GRACE_MS).count().current()
            window = window.apply(
                lambda result, dimension=dimension: {"dim": dimension, **result})
            window.to_topic(results)
    app.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("bootstrap", "input", "output", "group", "state-dir", "started-file"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    run_app(args.bootstrap, args.input, args.output, args.group, Path(args.state_dir),
            Path(args.started_file))


if __name__ == "__main__":
    main()
