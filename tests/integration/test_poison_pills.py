"""Records that used to stop a partition for good: dead-lettered, and the worker goes on."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from streams import topics
from streams.kafka_clients import producer
from tests.builders import NOW_MS, order_event, payment_event, settlement_line
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, http, read_until, settings_from

# About 1 MB: within the broker's default max.message.bytes (1048588) but over what a
# dead letter carrying it can be (the producer's own limit is 1000000).
BIG = 1_040_000
INT64_MAX = 2**63 - 1


def test_oversized_inputs_and_outputs_are_dead_lettered_across_a_restart(kafka_env, workers):
    settings = settings_from(kafka_env)
    flow = Flow(settings)
    # A producer that sends what the broker accepts, as another team's client might.
    big_out = producer(settings, **{"message.max.bytes": 1_048_576})
    pills: dict[tuple[str, bytes], bytes] = {}

    def pill(topic: str, key: bytes, value: bytes) -> None:
        pills[(topic, key)] = value
        big_out.produce(topic, key=key, value=value)

    # Undecodable values of about 1 MB on every input topic: the dead letter would carry
    # the whole value and be larger than the DLQ accepts.
    for topic in (topics.ORDERS, topics.WEBHOOKS, topics.SETTLEMENTS, topics.CONTROL):
        pill(topic, b"garbage-" + topic.encode(), b"\xc3\x01" + b"\x00" * BIG)
    # Valid records whose outputs would be too large: a 900 KB field of an order, and a
    # settlement line with a 500 KB record_id.
    huge_order = order_event("ord-huge", user_id="u" * 900_000)
    pill(topics.ORDERS, b"ord-huge", flow.catalog.encode("OrderEvent", huge_order))
    line = settlement_line("r" * 500_000, "batch-huge", "ord-x", 1000, NOW_MS)
    pill(topics.SETTLEMENTS, b"settlement-file",
         flow.catalog.encode("SettlementRecord", line))
    # 64-bit overflow: settlement lines of 2**63-1 (refused at the edge now), and ledger
    # entries that push a balance past 2**63-1 (the second one overflows).
    for number in range(3):
        huge_line = settlement_line(f"r-max-{number}", "batch-max", f"ord-max-{number}",
                                    INT64_MAX, NOW_MS)
        pill(topics.SETTLEMENTS, f"max-{number}".encode(),
             flow.catalog.encode("SettlementRecord", huge_line))
    for number in range(2):
        entry = {"entry_id": f"entry-max-{number}", "op": "CREDIT", "account_id": "acct-max",
                 "order_id": f"ord-max-{number}", "amount_minor": INT64_MAX, "bonus_minor": 0,
                 "currency": "USD", "provider": "hmac", "external_txn_id": None,
                 "refund_id": None, "reason": "PAYMENT_CONFIRMED", "caused_by": "test",
                 "created_at": NOW_MS}
        value = flow.catalog.encode("LedgerEntry", entry)
        if number == 0:
            big_out.produce(topics.CREDITS, key=b"acct-max", value=value)
        else:
            pill(topics.CREDITS, b"acct-max", value)
    assert big_out.flush(30) == 0

    worker = workers.start(TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS))
    read_until(settings, [topics.DLQ], lambda rs: len(rs) >= 1, workers=[worker])
    worker.kill()  # in the middle: the restart must not crash on the same batch
    worker = workers.start("w2", TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS))

    flow.order(order_event("ord-after"))
    flow.callback(payment_event("ord-after"))
    flow.flush()
    records = read_until(
        settings, [topics.DLQ, topics.CREDITS],
        lambda rs: any(r.topic == topics.CREDITS and r.key == b"acct-ord-after" for r in rs)
        and {(d["source_topic"], d["key"]) for d in decode_all(rs, topics.DLQ)} >= set(pills),
        workers=[worker])
    assert worker.process.poll() is None, worker.log()[-3000:]

    credits = Counter(c["order_id"] for c in decode_all(records, topics.CREDITS)
                      if not c["order_id"].startswith("ord-max"))
    assert credits == {"ord-after": 1}
    letters = decode_all(records, topics.DLQ)
    for (topic, key), value in pills.items():
        mine = [d for d in letters if (d["source_topic"], d["key"]) == (topic, key)]
        assert mine, (topic, key)
        for letter in mine:
            if letter["value"] == value:
                continue
            # Too large for the DLQ itself: a truncated copy that says so, with size and hash.
            assert value.startswith(letter["value"]), (topic, key)
            assert f"original value of {len(value)} bytes" in letter["error"]
            assert hashlib.sha256(value).hexdigest() in letter["error"]
    # Ids of absurd length are refused at the edge, naming the field.
    assert any("user_id is 900000 characters long" in d["error"]
               for d in letters if d["key"] == b"ord-huge")
    assert any("record_id is 500000 characters long" in d["error"]
               for d in letters if d["key"] == b"settlement-file")
    assert all("amount_minor must be in" in d["error"]
               for d in letters if d["key"].startswith(b"max-"))
    [overflow] = [d for d in letters if d["key"] == b"acct-max"]
    assert "outside the signed 64-bit range" in overflow["error"]
    status, body = http("GET", f"http://127.0.0.1:{worker.web_port}/accounts/acct-max/balance")
    if status == 200:  # this worker owns the account's partition: the balance held
        assert json.loads(body)["balances_minor"] == {"USD": INT64_MAX}
