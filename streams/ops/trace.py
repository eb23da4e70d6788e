"""Trace: an order's whole chain of evidence, or an account's ledger, read from the topics.

Order: the stages stamp an output with the event time of the input that caused it, so
a credit that reconciliation recovers carries the lost payment's time, earlier than the
settlement line that revealed it. Sorting on that would put effects before causes. The
chain is therefore in the order the system recorded it (record timestamp, then the
causal order of the topics), and each item shows its own event time and `as_of`, the
latest event time seen so far in the chain, which never goes back.

Bounded scans (`streams.ops.scan`) rather than an index kept by the workers: a trace is
rare and interactive, the topics are the record of truth (an index could itself be
wrong, which is what a trace is for), and nothing new has to be kept bounded in every
worker. The cost is a full read of the topics named below; a console that traces often
can keep the scan's records and answer many traces from one read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from streams import topics
from streams.codecs import DecodeError, default_catalog
from streams.config import Settings
from streams.domain.ledger import apply_entry
from streams.kafka_clients import ConsumedRecord
from streams.ops.ledger import ledger_entries
from streams.ops.scan import ProgressHook, scan

# Read in this order; at one instant, evidence sorts in this (causal) order too.
ORDER_TOPICS = (
    topics.ORDERS, topics.WEBHOOKS, topics.DLQ, topics.PAYMENTS, topics.RISK_DECISIONS,
    topics.SETTLEMENTS, topics.RECON_BREAKS, topics.REVIEW_CASES, topics.CREDITS,
    topics.ORDER_STATUS, topics.AUDIT, topics.ALERTS,
)
_RANK = {name: rank for rank, name in enumerate(ORDER_TOPICS)}


@dataclass(frozen=True)
class Evidence:
    at: int
    topic: str
    kind: str
    summary: str
    correlation_id: str | None
    details: dict[str, Any] = field(default_factory=dict)
    partition: int = 0
    offset: int = 0
    recorded_at: int = 0  # the record's Kafka timestamp
    as_of: int = 0  # the latest event time in the chain up to here

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OrderTrace:
    order_id: str
    evidence: list[Evidence]

    @property
    def found(self) -> bool:
        return bool(self.evidence)

    def to_dict(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "evidence": [e.to_dict() for e in self.evidence]}


@dataclass(frozen=True)
class AccountTrace:
    account_id: str
    entries: list[dict[str, Any]]  # each ledger entry, with the balance after it
    balance: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trace_order(
    settings: Settings, order_id: str, progress: ProgressHook | None = None
) -> OrderTrace:
    return order_evidence(scan(settings, ORDER_TOPICS, progress=progress), order_id)


def trace_account(
    settings: Settings, account_id: str, progress: ProgressHook | None = None
) -> AccountTrace:
    return account_ledger(scan(settings, [topics.CREDITS], progress=progress), account_id)


def account_ledger(records: Iterable[ConsumedRecord], account_id: str) -> AccountTrace:
    """The account's ledger in log order; the balance as the balances stage derives it
    (each entry_id once)."""
    balance: dict[str, int] = {}
    entries = []
    for entry in ledger_entries(records, key=account_id.encode()):
        if entry["account_id"] != account_id:
            continue
        balance = apply_entry(balance, entry)
        entries.append({**entry, "balance_after": balance.get(entry["currency"], 0)})
    return AccountTrace(account_id, entries, balance)


def order_evidence(records: Iterable[ConsumedRecord], order_id: str) -> OrderTrace:
    catalog = default_catalog()
    records = list(records)
    needle = order_id.encode()
    # Deliveries are tied to the order by what intake made of them (verified) or by the
    # dead letter that names their offset (rejected: nothing in their body is trusted,
    # so a rejected delivery is only matched when its raw body mentions the order id).
    verified: dict[str, dict] = {}
    rejected: dict[tuple[int, int], dict] = {}
    for record in records:
        if record.topic == topics.PAYMENTS and record.value:
            try:
                payment = topics.PAYMENTS_TOPIC.decode(record.value)
            except ValueError:
                continue  # as undecodable records elsewhere: not evidence of anything
            if payment.event.order_id == order_id:
                verified[payment.delivery_id or ""] = payment.to_json()
        elif record.topic == topics.DLQ and record.value:
            dead = _decode(catalog, "DeadLetter", record.value)
            if dead and dead["source_topic"] == topics.WEBHOOKS:
                rejected[(dead["partition"], dead["offset"])] = dead

    evidence: list[Evidence] = []
    for record in records:
        if record.value is None or needle not in record.value:
            continue  # cheap filter: every record about the order carries its id
        item = _evidence(catalog, record, order_id, verified, rejected)
        if item is not None:
            evidence.append(item)
    evidence.sort(key=lambda e: (e.recorded_at, _RANK.get(e.topic, 99), e.partition, e.offset))
    as_of, chain = 0, []
    for item in evidence:
        as_of = max(as_of, item.at)
        chain.append(replace(item, as_of=as_of))
    return OrderTrace(order_id, chain)


def _decode(catalog: Any, name: str, value: bytes) -> dict | None:
    try:
        return catalog.decode(name, value)
    except DecodeError:
        return None


def _evidence(
    catalog: Any, record: ConsumedRecord, order_id: str,
    verified: dict[str, dict], rejected: dict[tuple[int, int], dict],
) -> Evidence | None:
    topic = record.topic
    correlation = (record.headers.get("correlation_id") or b"").decode() or None

    def make(at: int, kind: str, summary: str, details: dict) -> Evidence:
        return Evidence(at, topic, kind, summary, correlation, details, record.partition,
                        record.offset, record.timestamp_ms)

    if topic == topics.PAYMENTS:
        return None  # shown with the delivery it came from
    if topic == topics.WEBHOOKS:
        delivery = _decode(catalog, "WebhookDelivery", record.value)
        if delivery is None:
            return None
        details = {"delivery_id": delivery["delivery_id"], "provider": delivery["provider"]}
        payment = verified.get(delivery["delivery_id"])
        dead = rejected.get((record.partition, record.offset))
        if payment is not None:
            verdict = (f"verified ({delivery['provider']} signature): {payment['kind']} "
                       f"{payment['amount_minor']} {payment['currency']}, "
                       f"event {payment['event_id']}")
            details |= {"payment": payment}
        elif dead is not None:
            verdict = f"rejected: {dead['error_kind']}: {dead['error']}"
            details |= {"error_kind": dead["error_kind"], "error": dead["error"]}
        else:
            verdict = "accepted, no new payment (a duplicate, or not about a payment)"
        return make(delivery["received_at"], "CALLBACK", verdict, details)
    name = topics.BY_NAME[topic].record if topic in topics.BY_NAME else None
    if name is None:
        return None
    data = _decode(catalog, name, record.value)
    if data is None:
        return None
    return _describe(topic, data, order_id, make)


def _describe(topic: str, data: dict, order_id: str, make: Any) -> Evidence | None:
    if topic == topics.ORDERS and data["order_id"] == order_id:
        return make(data["occurred_at"], f"ORDER_{data['type']}",
                    f"order {data['type']} ({data['event_id']})", data)
    if topic == topics.RISK_DECISIONS and data["order_id"] == order_id:
        return make(data["decided_at"], "RISK_DECISION",
                    f"risk {data['decision']} score {data['score']} rules "
                    f"{data['rules_version']}: {'; '.join(data['reasons']) or 'no rule fired'}",
                    data)
    if topic == topics.ORDER_STATUS and data["order_id"] == order_id:
        return make(data["updated_at"], "STATUS",
                    f"status {data['previous_status'] or '-'} -> {data['status']} "
                    f"(v{data['version']}, {data['reason']})", data)
    if topic == topics.CREDITS and data["order_id"] == order_id:
        return make(data["created_at"], f"LEDGER_{data['op']}",
                    f"ledger {data['op']} {data['amount_minor']}+{data['bonus_minor']} "
                    f"{data['currency']} to {data['account_id']} ({data['reason']}, "
                    f"{data['entry_id']})", data)
    if topic == topics.SETTLEMENTS and data.get("order_id") == order_id:
        return make(data["settled_at"], "SETTLEMENT_LINE",
                    f"settlement {data['kind']} {data['amount_minor']} {data['currency']} "
                    f"in batch {data['batch_id']} ({data['record_id']})", data)
    if topic == topics.RECON_BREAKS and data["order_id"] == order_id:
        return make(data["detected_at"], f"BREAK_{data['category']}",
                    f"reconciliation break {data['category']} -> {data['action']} "
                    f"(expected {data['expected_amount_minor']}, "
                    f"actual {data['actual_amount_minor']})", data)
    if topic == topics.REVIEW_CASES and data["order_id"] == order_id:
        return make(data["opened_at"], "REVIEW_CASE",
                    f"review case {data['case_id']}: {data['reason']}", data)
    if topic == topics.AUDIT and data["subject"] == order_id:
        # The inputs carry what the decision saw (velocity counts, amounts, rules).
        inputs = json.dumps(data["inputs"], sort_keys=True)
        return make(data["at"], "AUDIT",
                    f"audit {data['action']} by {data['actor'] or data['rule'] or '-'}: "
                    f"{data['outcome']} {inputs}", data)
    if topic == topics.ALERTS and data["order_id"] == order_id:
        return make(data["raised_at"], f"ALERT_{data['kind']}",
                    f"alert {data['kind']} ({data['severity']}): "
                    f"{json.dumps(data['details'], sort_keys=True)}", data)
    return None
