"""`topup-guard rebuild balances` against the real worker and broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from streams import topics, wire
from streams.kafka_clients import producer
from streams.ops.scan import end_offsets
from streams.partitioning import partition_for
from streams.stages.balances import BALANCES
from tests.builders import order_event, payment_event
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from

CLI = str(Path(sys.executable).with_name("topup-guard"))


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def test_rebuilt_balances_match_the_live_table_and_a_divergence_is_named(kafka_env, workers):
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS)}
    settings = settings_from(env)
    worker = workers.start(**env)
    flow = Flow(settings)
    orders = [f"o-rb-{i}" for i in range(6)]
    for order_id in orders:
        flow.order(order_event(order_id, promo_id="welcome", promo_bonus_minor=50))
        flow.callback(payment_event(order_id))
    flow.callback(payment_event(orders[0]))  # a duplicate: credits nothing
    flow.flush()
    changelog = BALANCES.changelog(settings.app_id)
    read_until(settings, [topics.CREDITS],
               lambda rs: len(decode_all(rs, topics.CREDITS)) == len(orders), workers=[worker])

    # The balances stage has applied every credit to its table.
    read_until(settings, [changelog],
               lambda rs: len({key for r in rs if (key := BALANCES.own_key(r.key))})
               == len(orders), workers=[worker])
    live_topics = [t for t in topics.BY_NAME if not t.startswith("topup.internal.")]
    before = end_offsets(settings, [*live_topics, changelog])

    done = cli(env, "rebuild", "balances", "--verify", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["differences"] == []
    assert report["balances"] == {f"acct-{o}": {"USD": 1050} for o in orders}
    # The rebuild wrote nothing, anywhere.
    assert end_offsets(settings, [*live_topics, changelog]) == before

    # A deliberate divergence: one account's live balance deleted by hand.
    vandal = producer(settings)
    for account, value in ((f"acct-{orders[2]}", None),
                           (f"acct-{orders[3]}", wire.dumps({"USD": 1}))):
        # Where the store keeps it: under its prefix in its family's changelog, on the
        # partition of the account's key.
        vandal.produce(changelog, key=BALANCES.key_prefix + account, value=value,
                       partition=partition_for(account.encode(), settings.partitions))
    assert vandal.flush(30) == 0
    diverged = cli(env, "rebuild", "balances", "--verify")
    assert diverged.returncode == 1
    assert f"acct-{orders[2]}: rebuilt {{'USD': 1050}} live None" in diverged.stdout
    assert f"acct-{orders[3]}: rebuilt {{'USD': 1050}} live {{'USD': 1}}" in diverged.stdout
    assert "2 difference(s)" in diverged.stdout
