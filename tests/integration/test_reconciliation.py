"""Reconciliation end to end: one settlement file with a fault of every kind, read back
from the output topics, and the callback that arrives after reconciliation credited."""

from __future__ import annotations

from collections import Counter

from streams import topics
from streams.domain.common.ids import entry_id
from streams.recon_report_cli import report
from tests.builders import NOW_MS, batch_closed, order_event, payment_event, settlement_line
from tests.integration.flow import Flow, partition_of
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import decode_all, read_until, settings_from

HOUR = 3_600_000
ORDERS = ("o-rc-down", "o-rc-unsettled", "o-rc-drift", "o-rc-twice", "o-rc-match")
EXPECTED_BREAKS = {
    ("o-rc-down", "MISSING_CREDIT", "AUTO_CORRECTED"),
    ("o-rc-unsettled", "MISSING_AT_PROVIDER", "FROZEN"),
    ("o-rc-drift", "AMOUNT_MISMATCH", "MANUAL_REVIEW"),
    ("o-rc-twice", "DUPLICATE_SETTLEMENT", "MANUAL_REVIEW"),
}


def _statuses(records) -> dict[str, str]:
    latest: dict[str, tuple[int, str]] = {}
    for status in decode_all(records, topics.ORDER_STATUS):
        if status["version"] > latest.get(status["order_id"], (0, ""))[0]:
            latest[status["order_id"]] = (status["version"], status["status"])
    return {order_id: status for order_id, (_, status) in latest.items()}


def _same_partition_batch(anchor: str, partitions: int) -> str:
    # The short batch must share the totals stage's partition (and so its event-time
    # clock) with the full one, whose close then carries that clock past its grace.
    wanted = partition_of(anchor, partitions)
    return next(f"b-short-{n}" for n in range(1000)
                if partition_of(f"b-short-{n}", partitions) == wanted)


def test_a_settlement_file_with_every_fault_gives_one_break_each(kafka_env, workers):
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS)}
    settings = settings_from(env)
    worker = workers.start("recon", **env)
    flow = Flow(settings)
    for index, order_id in enumerate(ORDERS):
        flow.order(order_event(order_id, at=NOW_MS + index * 1_000))
        if order_id != "o-rc-down":  # its callback is lost (for now)
            flow.callback(payment_event(order_id, at=NOW_MS + index * 1_000 + 500))
    flow.flush()
    read_until(settings, [topics.ORDER_STATUS],
               lambda rs: _statuses(rs) == {o: "CREATED" if o == "o-rc-down" else "CREDITED"
                                            for o in ORDERS},
               workers=[worker])

    # The provider's file, the next day: one batch short of a line (the line it lacks has
    # no order id, so intake dead-letters it), then the full one.
    full, settled = "b-full", NOW_MS + HOUR
    short = _same_partition_batch(full, settings.partitions)
    flow.settlement(settlement_line("r-no-order", short, None, 500, settled))
    flow.settlement(batch_closed(short, lines=1, total=500, at=settled, covers_until=None))
    lines = [
        settlement_line("r-down", full, "o-rc-down", 1000, settled),
        settlement_line("r-drift", full, "o-rc-drift", 990, settled),
        settlement_line("r-twice-1", full, "o-rc-twice", 1000, settled),
        settlement_line("r-twice-2", full, "o-rc-twice", 1000, settled + 1),
        settlement_line("r-match", full, "o-rc-match", 1000, settled),
    ]
    for line in lines:
        flow.settlement(line)
    # Closing three hours on moves every partition's event time past the grace periods;
    # its watermark covers every payment above, and o-rc-unsettled has no line.
    total = sum(line["amount_minor"] for line in lines)
    flow.settlement(batch_closed(full, lines=len(lines), total=total, at=NOW_MS + 3 * HOUR,
                                 covers_until=NOW_MS + HOUR))
    flow.flush()

    outputs = [topics.RECON_BREAKS, topics.CREDITS, topics.ALERTS, topics.AUDIT, topics.CONTROL,
               topics.DLQ]
    records = read_until(
        settings, outputs,
        lambda rs: len(decode_all(rs, topics.RECON_BREAKS)) >= len(EXPECTED_BREAKS)
        and any(c["order_id"] == "o-rc-down" for c in decode_all(rs, topics.CREDITS)),
        workers=[worker],
    )
    breaks = decode_all(records, topics.RECON_BREAKS)
    assert {(b["order_id"], b["category"], b["action"]) for b in breaks} == EXPECTED_BREAKS
    assert len(breaks) == len(EXPECTED_BREAKS)
    drift = next(b for b in breaks if b["category"] == "AMOUNT_MISMATCH")
    assert (drift["expected_amount_minor"], drift["actual_amount_minor"]) == (1000, 990)

    # The missing credit was made on the callback's path, with the callback's entry id.
    callback_entry = entry_id("o-rc-down", "CREDIT", "txn-o-rc-down", None)
    assert [c["entry_id"] for c in decode_all(records, topics.CREDITS)
            if c["order_id"] == "o-rc-down"] == [callback_entry]

    alerts = Counter((a["kind"], a["severity"]) for a in decode_all(records, topics.ALERTS))
    assert alerts[("BATCH_TOTALS_MISMATCH", "WARN")] == 1
    assert alerts[("MISSING_AT_PROVIDER", "PAGE")] == 1
    freezes = decode_all(records, topics.CONTROL)
    assert [(f["action"], f["scope"]) for f in freezes] == [
        ("FREEZE_CREDITS", "account:acct-o-rc-unsettled")
    ]
    matched = [a for a in decode_all(records, topics.AUDIT)
               if a["subject"] == "o-rc-match" and a["action"] == "MATCHED"]
    assert len(matched) == 1
    dead = decode_all(records, topics.DLQ)
    assert [(d["source_topic"], d["error_kind"]) for d in dead] == [
        (topics.SETTLEMENTS, "BAD_PAYLOAD")
    ]

    summary = report(settings, since_ms=None, timeout_s=30)
    assert "Breaks: 4 on 4 orders" in summary
    for _, category, action in EXPECTED_BREAKS:
        assert f"{category} / {action}" in summary
    matched_orders = {a["subject"] for a in decode_all(records, topics.AUDIT)
                      if a["action"] == "MATCHED"}
    assert f"({len(matched_orders)} matched orders, 4 with breaks)" in summary
    # Every order here is HMAC's: its row of the rate per provider is the whole.
    by_provider = summary.splitlines()[summary.splitlines().index("Match rate by provider:") + 1]
    assert by_provider.split()[0] == "hmac", summary
    assert by_provider.endswith(f"({len(matched_orders)} matched orders, 4 with breaks)")

    # The lost callback turns up after all: it credits nothing more.
    flow.callback(payment_event("o-rc-down", at=NOW_MS + 500), received_at=NOW_MS + 4 * HOUR)
    flow.flush()

    def ignored(rs) -> bool:
        return any(a["subject"] == "o-rc-down" and a["action"] == "DUPLICATE_IGNORED"
                   for a in decode_all(rs, topics.AUDIT))

    after = read_until(settings, [topics.AUDIT, topics.CREDITS], ignored, workers=[worker])
    assert ignored(after)
    assert [c["entry_id"] for c in decode_all(after, topics.CREDITS)
            if c["order_id"] == "o-rc-down"] == [callback_entry]


def test_a_high_mismatch_rate_warns_and_pages_only_when_intake_was_in_trouble(
    kafka_env, workers
):
    """Two hours with the same break rate: the one with a burst of forged callbacks pages."""
    env = {**kafka_env, "TOPUP_HMAC_SECRETS": ",".join(HMAC_SECRETS),
           "TOPUP_RECON_MIN_DECISIONS": "5"}
    settings = settings_from(env)
    worker = workers.start("rates", **env)
    flow = Flow(settings)
    calm = NOW_MS - NOW_MS % HOUR + 2 * HOUR
    attacked, closing = calm + HOUR, calm + 3 * HOUR
    minute = 60_000

    def paid_order(order_id: str, at: int) -> None:
        flow.order(order_event(order_id, at=at))
        flow.callback(payment_event(order_id, at=at + 100))

    hours = {calm: [f"o-rt-calm-{i}" for i in range(6)],
             attacked: [f"o-rt-attacked-{i}" for i in range(6)]}
    for start, order_ids in hours.items():
        for index, order_id in enumerate(order_ids):
            paid_order(order_id, start + 5 * minute + index * 1_000)
    # In the attacked hour's sixth minute, 24 of its 30 deliveries are forged; one more
    # forgery two minutes on starts a new minute, which reports the sixth.
    for index in range(24):
        forged = payment_event(f"o-rt-forged-{index}", at=attacked + 5 * minute + 10_000 + index)
        flow.callback(forged, secret="not-the-providers-secret")
    flow.callback(payment_event("o-rt-forged-late", at=attacked + 7 * minute),
                  secret="not-the-providers-secret")
    paid_order("o-rt-closing", closing)
    flow.flush()
    every_order = [*hours[calm], *hours[attacked], "o-rt-closing"]
    read_until(settings, [topics.CREDITS],
               lambda rs: {c["order_id"] for c in decode_all(rs, topics.CREDITS)}
               == set(every_order),
               workers=[worker])

    def decided(rs) -> set[str]:
        return ({b["order_id"] for b in decode_all(rs, topics.RECON_BREAKS)}
                | {a["subject"] for a in decode_all(rs, topics.AUDIT) if a["action"] == "MATCHED"})

    # Each hour's file, in its hour: four lines as credited, two drifted (2 breaks in 6).
    # Files follow each other as in life: sent at once, a later file's decisions could
    # overtake an earlier one's made on other partitions, by more than the grace allows.
    for start, order_ids in hours.items():
        for index, order_id in enumerate(order_ids):
            amount = 990 if index < 2 else 1000
            flow.settlement(settlement_line(f"r-{order_id}", f"b-{start}", order_id, amount,
                                            start + 30 * minute))
        flow.flush()
        read_until(settings, [topics.RECON_BREAKS, topics.AUDIT],
                   lambda rs, ids=order_ids: decided(rs) >= set(ids), workers=[worker])
    # The next file carries event time past both hours' grace.
    flow.settlement(settlement_line("r-o-rt-closing", "b-closing", "o-rt-closing", 1000,
                                    closing + minute))
    flow.flush()

    def rate_alerts(rs) -> list[dict]:
        return [a for a in decode_all(rs, topics.ALERTS) if a["kind"] == "MISMATCH_RATE_HIGH"]

    records = read_until(settings, [topics.ALERTS, topics.RECON_BREAKS],
                         lambda rs: len(rate_alerts(rs)) >= 2, workers=[worker])
    by_hour = {int(a["details"]["hour_start"]): a for a in rate_alerts(records)}
    assert set(by_hour) == {calm, attacked} and len(rate_alerts(records)) == 2
    assert (by_hour[calm]["severity"], by_hour[calm]["details"]["page_because"]) == ("WARN", "")
    assert (by_hour[attacked]["severity"], by_hour[attacked]["details"]["page_because"]) == (
        "PAGE", "verification_failures")
    for alert in by_hour.values():
        assert alert["provider"] == "hmac"
        assert (alert["details"]["breaks"], alert["details"]["decisions"]) == ("2", "6")
    assert by_hour[attacked]["details"]["verification_failure_bp"] == "8000"
    assert by_hour[calm]["details"]["verification_failure_bp"] == "0"
    assert Counter(b["category"] for b in decode_all(records, topics.RECON_BREAKS)) == {
        "AMOUNT_MISMATCH": 4}
