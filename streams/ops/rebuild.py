"""`rebuild`: the tables rebuilt by replaying the input topics, and compared with the live ones.

The replay (`streams.ops.replay`) reads the input topics from their earliest retained
offsets, read_committed and bounded, and runs them through the worker's own stages into
fresh stores in a state dir of the run's own, under an application id of its own. It
produces nothing: the report proves it by the end offsets of every live topic and every
live changelog, read before and after.

`verify` compares the rebuilt tables with the live ones, the last value per key of each
live store's changelog: order states, balances and reconciliation states by default. It
is meaningful when the live workers are idle (nothing in flight): while they run, the
live tables may be ahead of the inputs read.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streams import topics, wire
from streams.codecs import default_catalog
from streams.config import Settings
from streams.confluent import attach_registry
from streams.kafka_clients import ConsumedRecord
from streams.metrics import Metrics
from streams.ops.freezes import OperatorError
from streams.ops.replay import INPUT_TOPICS, ReplayTopology, shadow_settings
from streams.ops.scan import Progress, ProgressHook, end_offsets, scan
from streams.partitioning import partition_for
from streams.runtime.context import Record
from streams.runtime.store import StoreSpec
from streams.stages.balances import BALANCES
from streams.stages.orders import ORDER_STATE
from streams.stages.reconciliation import RECON_STATE

# What --verify compares unless told otherwise: the tables money and evidence rest on.
DEFAULT_STORES = (ORDER_STATE.name, BALANCES.name, RECON_STATE.name)


@dataclass(frozen=True)
class Difference:
    store: str
    key: str
    rebuilt: Any  # None: absent from the rebuilt table
    live: Any  # None: absent from the live table
    fields: list[str] = field(default_factory=list)  # the paths that differ, "a.b[0].c"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RebuildReport:
    run_id: str
    app_id: str
    state_dir: str
    inputs: int  # input records replayed
    handled: int  # records handled, internal ones included
    seconds: float
    tables: dict[str, int]  # store -> keys rebuilt
    withheld: dict[str, int]  # topic -> records a live run would have sent there
    live_topics_unchanged: bool
    moved: dict[str, int] = field(default_factory=dict)  # "topic[p]" -> records added
    differences: list[Difference] | None = None  # None: not verified

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["differences"] = (None if self.differences is None
                               else [d.to_dict() for d in self.differences])
        return data


def live_topic_names(settings: Settings, stores: Iterable[StoreSpec]) -> list[str]:
    """Every contract topic and the live changelogs of `stores`: what must not move."""
    changelogs = {spec.changelog(settings.app_id) for spec in stores}
    return [*topics.BY_NAME, *sorted(changelogs)]


def rebuild(
    settings: Settings,
    stores: Iterable[str] | None = None,
    verify: bool = False,
    progress: ProgressHook | None = None,
) -> RebuildReport:
    """Replay the inputs into fresh tables; with `verify`, every difference with the live
    ones (which `promote` can then make live). The rebuilt state dir is removed after."""
    run_id = uuid.uuid4().hex[:8]
    state_dir = Path(tempfile.mkdtemp(prefix=f"topup-rebuild-{run_id}-"))
    shadow = shadow_settings(settings, run_id, state_dir)
    catalog = default_catalog()
    attach_registry(catalog, settings, Metrics(), ())
    topology = ReplayTopology(shadow, catalog)
    names = list(stores) if stores is not None else list(DEFAULT_STORES)
    unknown = sorted(set(names) - set(topology.worker.specs))
    if unknown:
        topology.close()
        shutil.rmtree(state_dir, ignore_errors=True)
        raise OperatorError(f"unknown store(s) {unknown}; the stores are "
                            f"{sorted(topology.worker.specs)}")
    specs = topology.worker.specs
    watched = live_topic_names(settings, specs.values())
    before = end_offsets(settings, watched)
    started = time.monotonic()
    try:
        inputs = [_record(r) for r in scan(settings, INPUT_TOPICS, progress=progress)]
        catalog.prefetch(r.value for r in inputs)
        topology.run(inputs, _batch_progress(progress, started))
        seconds = time.monotonic() - started
        rebuilt = {name: topology.table(name) for name in names}
    finally:
        topology.close()
    differences = None
    if verify:
        live = live_tables(settings, [specs[name] for name in names], progress)
        differences = [d for name in names
                       for d in table_differences(name, rebuilt[name], live[name])]
    after = end_offsets(settings, watched)
    moved = {f"{t}[{p}]": after.get((t, p), 0) - offset for (t, p), offset in before.items()
             if after.get((t, p), 0) != offset}
    shutil.rmtree(state_dir, ignore_errors=True)
    return RebuildReport(
        run_id=run_id, app_id=shadow.app_id,
        state_dir=str(state_dir),
        inputs=len(inputs), handled=topology.handled, seconds=round(seconds, 3),
        tables={name: len(rows) for name, rows in rebuilt.items()},
        withheld=dict(sorted(topology.published.items())),
        live_topics_unchanged=not moved, moved=moved, differences=differences,
    )


def live_tables(
    settings: Settings, stores: list[StoreSpec], progress: ProgressHook | None = None
) -> dict[str, dict[str, bytes]]:
    """Each store's live table: the last value per key of its changelog (None deletes)."""
    tables: dict[str, dict[str, bytes]] = {spec.name: {} for spec in stores}
    changelogs: dict[str, list[StoreSpec]] = {}
    for spec in stores:
        changelogs.setdefault(spec.changelog(settings.app_id), []).append(spec)
    for record in scan(settings, list(changelogs), progress=progress):
        for spec in changelogs[record.topic]:
            if (key := spec.own_key(record.key)) is None:
                continue
            table = tables[spec.name]
            if record.value is None:
                table.pop(key, None)
            else:
                table[key] = record.value
    return tables


def table_differences(
    store: str, rebuilt: dict[str, bytes], live: dict[str, bytes]
) -> list[Difference]:
    """Every key whose decoded value differs, in key order."""
    out = []
    for key in sorted(set(rebuilt) | set(live)):
        mine = wire.loads(rebuilt[key]) if key in rebuilt else None
        theirs = wire.loads(live[key]) if key in live else None
        if mine != theirs:
            out.append(Difference(store, key, mine, theirs, differing_paths(mine, theirs)))
    return out


def differing_paths(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two decoded values differ, as paths to the smallest differing parts."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(set(a) | set(b), key=str)
                for p in differing_paths(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b, strict=True))
                for p in differing_paths(x, y, f"{path}[{i}]")]
    return [] if a == b else [path or "(whole value)"]


def _record(consumed: ConsumedRecord) -> Record:
    return Record(consumed.topic, consumed.partition, consumed.offset, consumed.key,
                  consumed.value, consumed.timestamp_ms, list(consumed.headers.items()))


def _batch_progress(
    progress: ProgressHook | None, started: float, every_s: float = 2.0
) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    last = [started]

    def report(handled: int, _published: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            progress(Progress(handled, now - started))

    return report


def promote(
    settings: Settings, differences: list[Difference], by: str, reason: str, now_ms: int,
    group_members: Callable[[Settings], int] | None = None,
) -> dict[str, Any]:
    """Make the rebuilt values the live ones: each differing key's rebuilt value (a
    tombstone where the rebuild has none) written to the live store's changelog, in one
    transaction, with an audit record. Refused while live workers are in the group: they
    would overwrite it, or be overwritten mid-batch. Restarted workers restore the tail of
    the changelogs past their checkpoints, so the promotion reaches their local stores."""
    if not by.strip() or not reason.strip():
        raise OperatorError("--by and --reason must not be empty")
    members = (group_members or live_group_members)(settings)
    if members:
        raise OperatorError(f"{members} live worker(s) still in group {settings.app_id}: "
                            "stop them before promoting")
    from streams.kafka_clients import producer

    client = producer(settings, acks="all", **{
        "transactional.id": f"{settings.app_id}-ops-promote"})
    from streams.topology import store_specs

    specs = store_specs(settings)
    client.init_transactions(30)
    client.begin_transaction()
    for d in differences:
        spec = specs[d.store]
        # A store's key is on the partition its own key hashes to, whatever prefix its
        # family's changelog carries it under.
        client.produce(spec.changelog(settings.app_id), key=(spec.key_prefix + d.key).encode(),
                       value=None if d.rebuilt is None else wire.dumps(d.rebuilt),
                       partition=partition_for(d.key.encode(), settings.partitions))
    subject = f"rebuild:{settings.app_id}"
    audit: dict[str, Any] = {
        "audit_id": f"au-promote-{uuid.uuid4()}", "subject": subject,
        "action": "REBUILD_PROMOTED", "rule": None,
        "inputs": {"keys": str(len(differences)),
                   "stores": ",".join(sorted({d.store for d in differences})),
                   "reason": reason.strip()},
        "outcome": f"{len(differences)} key(s) replaced by their rebuilt values",
        "actor": by.strip(), "at": now_ms,
    }
    client.produce(topics.AUDIT, key=subject.encode(),
                   value=default_catalog().encode("AuditRecord", audit))
    client.commit_transaction(30)
    return audit


def live_group_members(settings: Settings) -> int:
    """How many consumers are in the live workers' group now."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from streams.kafka_clients import client_config

    admin = AdminClient(client_config(settings))
    future = admin.describe_consumer_groups([settings.app_id])[settings.app_id]
    try:
        return len(future.result(timeout=30).members)
    except KafkaException:
        return 0  # no such group: no worker has ever run, none runs now
