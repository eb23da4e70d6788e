"""Issue 7's peer benchmark, their side: the step of bench/shared_step.py in Quix Streams.

Written the way Quix Streams' docs show: an Application with exactly-once processing, a
StreamingDataFrame, a stateful filter for the dedup and a stateful apply for the window,
both on the default RocksDB store, whose State is scoped to the message key (user_id).

Quix Streams pins its own confluent-kafka and rocksdict, so it lives in a virtualenv of
its own, .venv-quix beside .venv, made on first use. This module is imported by our
harness (stdlib only at the top) and run as a script by .venv-quix's python: that python
never imports our package, so nothing here may import `streams` or `bench`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The latest release when the benchmark was written that installs on our Python.
QUIXSTREAMS_VERSION = "3.28.1"
REPO = Path(__file__).resolve().parents[1]
QUIX_VENV = REPO / ".venv-quix"
HOUR_MS = 3_600_000
# Records per transaction, as our Worker's batch (bench.shared_step.BATCH): Quix's default
# is a commit every 5 s, which would put up to 5 s of waiting at the end of the run.
COMMIT_EVERY = 500


def _installed_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True, text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def quix_python(venv: Path = QUIX_VENV) -> Path:
    """The python of a virtualenv holding the pinned quixstreams, made if missing."""
    python = venv / "bin" / "python"
    if _installed_version(python) == QUIXSTREAMS_VERSION:
        return python
    if not python.exists():
        # From our interpreter's base: the same Python version, none of our packages.
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    f"quixstreams=={QUIXSTREAMS_VERSION}"], check=True)
    if _installed_version(python) != QUIXSTREAMS_VERSION:
        raise RuntimeError(f"quixstreams {QUIXSTREAMS_VERSION} did not install into {venv}")
    return python


def start_quix(python: Path, bootstrap: str, input_topic: str, output_topic: str, group: str,
               state_dir: Path, started_file: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [str(python), str(Path(__file__).resolve()), "--bootstrap", bootstrap,
               "--input", input_topic, "--output", output_topic, "--group", group,
               "--state-dir", str(state_dir), "--started-file", str(started_file)]
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=state_dir)


def run_app(bootstrap: str, input_topic: str, output_topic: str, group: str, state_dir: Path,
            started_file: Path) -> None:
    """The step in Quix Streams, until SIGTERM or SIGINT (Application.run handles both)."""
    from quixstreams import Application, State

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_every=COMMIT_EVERY,
        state_dir=state_dir,
        loglevel="WARNING",
    )
    attempts = app.topic(input_topic, value_deserializer="json")
    answers = app.topic(output_topic, value_serializer="json")
    first = [True]

    def first_sighting(attempt: dict[str, Any], state: State) -> bool:
        if first[0]:
            # The timing starts at the first record handed to the step, as on our side.
            first[0] = False
            started_file.write_text(repr(time.monotonic()))
        seen = f"seen:{attempt['event_id']}"
        if state.exists(seen):
            return False
        state.set(seen, attempt["occurred_at"])
        return True

    def count_attempts(attempt: dict[str, Any], state: State) -> dict[str, Any]:
        at = attempt["occurred_at"]
        times = [t for t in state.get("times", []) if t > at - HOUR_MS]
        times.append(at)
        state.set("times", times)
        return {"event_id": attempt["event_id"], "user_id": attempt["user_id"],
                "attempts_1h": len(times)}

    sdf = app.dataframe(attempts)
    sdf = sdf.filter(first_sighting, stateful=True)
    sdf = sdf.apply(count_attempts, stateful=True)
    sdf.to_topic(answers)
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
