"""`topup-guard rebuild --verify`: the whole topology replayed into fresh state, against the
real worker and broker, writing nothing to any live topic."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from streams import topics
from streams.kafka_clients import producer
from streams.ops.rebuild import DEFAULT_STORES, live_tables, live_topic_names, rebuild
from streams.ops.scan import end_offsets
from streams.partitioning import partition_for
from streams.stages.orders import ORDER_STATE
from streams.topology import store_specs
from tests.builders import NOW_MS, batch_closed, order_event, payment_event, settlement_line
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from

CLI = str(Path(sys.executable).with_name("topup-guard"))
HOUR = 3_600_000


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=180)


def test_rebuild_by_replay_restores_the_tables_and_writes_nothing_live(kafka_env, workers):
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS)}
    settings = settings_from(env)
    worker = workers.start(**env)
    flow = Flow(settings)
    # A small day with faults: paid orders, a duplicate callback, a callback with a bad
    # signature, a callback lost and made good by the settlement, an order never paid.
    # Each order is decided before the next is sent: a risk decision depends on the order
    # its velocity answers arrive in (topology.md, "Arrival order matters"), which a
    # replay in one process cannot reproduce, so this day leaves the race no room.
    paid = [f"o-rp-{i}" for i in range(5)]
    lost, unpaid = "o-rp-lost", "o-rp-unpaid"
    for i, order_id in enumerate([*paid, lost, unpaid]):
        flow.order(order_event(order_id, at=NOW_MS + i * 1000), f"corr-{order_id}")
        flow.flush()
        read_until(settings, [topics.RISK_DECISIONS],
                   lambda rs, o=order_id: any(d["order_id"] == o for d in
                                              decode_all(rs, topics.RISK_DECISIONS)),
                   workers=[worker])
    for i, order_id in enumerate(paid):
        flow.callback(payment_event(order_id, at=NOW_MS + i * 1000 + 500))
    flow.callback(payment_event(paid[0], at=NOW_MS + 500))
    flow.callback(payment_event(paid[1], at=NOW_MS + 1500), secret="not-the-secret")
    flow.flush()
    # The settlement file comes after the credits, as it does in a day (hours later): a
    # line sent with its callback races it to reconciliation, and the replay, which
    # handles each input to the end before the next, would decide that race one way.
    read_until(settings, [topics.CREDITS],
               lambda rs: {c["order_id"] for c in decode_all(rs, topics.CREDITS)} == set(paid),
               workers=[worker])
    flow.settlement(settlement_line("r-rp-lost", "b-rp", lost, 1000, NOW_MS + HOUR))
    for i, order_id in enumerate(paid):
        flow.settlement(settlement_line(f"r-rp-{i}", "b-rp", order_id, 1000, NOW_MS + HOUR))
    flow.settlement(batch_closed("b-rp", lines=len(paid) + 1, total=1000 * (len(paid) + 1),
                                 at=NOW_MS + 3 * HOUR, covers_until=NOW_MS + HOUR))
    flow.flush()
    credited = {*paid, lost}
    read_until(settings, [topics.CREDITS],
               lambda rs: {c["order_id"] for c in decode_all(rs, topics.CREDITS)} == credited,
               workers=[worker])
    # The live worker is done with everything the inputs lead to when its tables agree
    # with the replay's (bounded: a worker that never converges fails the test here).
    deadline = time.monotonic() + 90
    while rebuild(settings, verify=True).differences:
        assert worker.process.poll() is None, worker.log()
        if time.monotonic() > deadline:
            left = rebuild(settings, verify=True).differences or []
            raise AssertionError("\n".join(f"{d.store} {d.key}: {d.fields}" for d in left))
    workers.stop_all()  # and stays so while the CLI checks it

    specs = store_specs(settings)
    watched = live_topic_names(settings, [specs[name] for name in DEFAULT_STORES])
    before = end_offsets(settings, watched)
    done = cli(env, "rebuild", "--verify", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["differences"] == []
    assert report["live_topics_unchanged"] is True
    assert report["tables"]["balances"] == len(credited)
    assert report["withheld"][topics.CREDITS] == len(credited)
    # Checked here too, not only by the command itself.
    assert end_offsets(settings, watched) == before
    assert "scanned" in done.stderr  # progress, with counts and a rate

    # A deliberate divergence: one order's live state deleted by hand.
    changelog = ORDER_STATE.changelog(settings.app_id)
    state_key = next(k for k in live_tables(settings, [ORDER_STATE])[ORDER_STATE.name]
                     if lost in k)
    vandal = producer(settings)
    # Where the store keeps it: under its prefix in its family's changelog, on the
    # partition of the order's key.
    vandal.produce(changelog, key=ORDER_STATE.key_prefix + state_key, value=None,
                   partition=partition_for(state_key.encode(), settings.partitions))
    assert vandal.flush(30) == 0
    diverged = cli(env, "rebuild", "--verify")
    assert diverged.returncode == 1, diverged.stdout + diverged.stderr
    assert "1 difference(s)" in diverged.stdout
    assert f"{ORDER_STATE.name} {state_key}:" in diverged.stdout
    assert "live    null" in diverged.stdout
    assert f"{ORDER_STATE.name} {state_key}: differs at (whole value)" in diverged.stdout

    # Promotion puts the rebuilt value back, audited, and the tables agree again.
    refused = cli(env, "rebuild", "--promote")
    assert refused.returncode == 2 and "--by" in refused.stderr
    promoted = cli(env, "rebuild", "--promote", "--by", "ops@test", "--reason", "vandalised")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert "promoted: 1 key(s)" in promoted.stdout
    assert cli(env, "rebuild", "--verify").returncode == 0
    audits = decode_all(read_until(
        settings, [topics.AUDIT],
        lambda rs: any(a["action"] == "REBUILD_PROMOTED" for a in decode_all(rs, topics.AUDIT))),
        topics.AUDIT)
    [audit] = [a for a in audits if a["action"] == "REBUILD_PROMOTED"]
    assert audit["actor"] == "ops@test" and audit["inputs"]["stores"] == ORDER_STATE.name


def test_rebuild_refuses_an_unknown_store_without_a_traceback(kafka_env):
    done = cli(kafka_env, "rebuild", "--stores", "order-state,no-such-store")
    assert done.returncode == 2
    assert "unknown store(s) ['no-such-store']" in done.stderr
    assert "Traceback" not in done.stderr
