"""The internal topics' codecs write the bytes these topics have always carried, so
records already on them (and in a replay) read the same, and read back what they wrote."""

from __future__ import annotations

import pytest

from streams import topics, wire
from streams.domain.recon.inputs import WatermarkAdvanced, parse_line, parse_settlement
from streams.domain.recon.intake_health import IntakeHealth
from streams.domain.recon.outputs import ReconCategory, ReconOutcome
from streams.domain.risk.velocity import Dimension, DimensionCounts, Observation, ObservationKind
from streams.internal_records import (
    InvalidRecord,
    OrderCommand,
    SettledInput,
    SettledRecord,
    VerifiedPayment,
)
from tests.builders import batch_closed, payment_event, settlement_line

AT = 1_795_000_000_000


def test_a_verified_payment_is_the_event_with_its_delivery_and_arrival():
    event = payment_event("o-1")
    raw = topics.PAYMENTS_TOPIC.encode(VerifiedPayment(event, AT, "dlv-1"))
    # intake's envelope as it was written before the codec owned it
    assert raw == wire.dumps({**event.to_dict(), "delivery_id": "dlv-1", "received_at": AT})
    assert topics.PAYMENTS_TOPIC.decode(raw) == VerifiedPayment(event, AT, "dlv-1")


def test_a_payment_written_without_a_delivery_id_still_reads():
    event = payment_event("o-1")
    raw = wire.dumps({**event.to_dict(), "received_at": AT})
    assert topics.PAYMENTS_TOPIC.decode(raw) == VerifiedPayment(event, AT, None)


def test_an_order_command_is_the_control_record_under_control():
    command = {"command_id": "c-1", "action": "FREEZE_CREDITS", "scope": "account:a-1",
               "reason": "r", "issued_by": "ops", "issued_at": AT}
    raw = topics.ORDER_COMMANDS_TOPIC.encode(OrderCommand(command))
    assert raw == wire.dumps({"control": command})
    decoded = topics.ORDER_COMMANDS_TOPIC.decode(raw)
    assert (decoded.command, decoded.issued_at) == (command, AT)


def test_recon_inputs_are_a_kind_an_event_time_and_the_data():
    line = parse_line(settlement_line("r-1", "b-1", "o-1", 1000, AT))
    mark = WatermarkAdvanced("hmac", "m-1", AT)
    for item, kind, data in ((line, "line", line.to_record()),
                             (mark, "watermark", mark.to_dict())):
        raw = topics.RECON_INPUTS_TOPIC.encode(SettledInput(item, AT + 1))
        assert raw == wire.dumps({"kind": kind, "at": AT + 1, "data": data})
        assert topics.RECON_INPUTS_TOPIC.decode(raw) == SettledInput(item, AT + 1)


def test_settlement_batch_records_are_the_record_and_its_event_time():
    for record in (settlement_line("r-1", "b-1", "o-1", 1000, AT),
                   batch_closed("b-1", 1, 1000, AT, AT)):
        parsed = parse_settlement(record)
        raw = topics.SETTLEMENT_BATCHES_TOPIC.encode(SettledRecord(parsed, AT))
        assert raw == wire.dumps({"at": AT, "record": parsed.to_record()})
        assert topics.SETTLEMENT_BATCHES_TOPIC.decode(raw) == SettledRecord(parsed, AT)


def test_rate_inputs_say_whether_they_are_a_decision_or_an_intake_reading():
    outcome = ReconOutcome("o-1", "hmac", AT, ReconCategory.MISSING_CREDIT)
    health = IntakeHealth("hmac", AT, deliveries=3, verification_failures=1,
                          intake_lag_seconds=1.5)
    for item, kind in ((outcome, "outcome"), (health, "intake")):
        raw = topics.RECON_OUTCOMES_TOPIC.encode(item)
        assert raw == wire.dumps({"kind": kind, "data": item.to_dict()})
        assert topics.RECON_OUTCOMES_TOPIC.decode(raw) == item


def _observation(dimension: Dimension, key: str) -> Observation:
    return Observation(dimension, key, ObservationKind.ATTEMPT, "o-1", "a-1", AT, 1000, "USD")


def _answer(dimension: str, key: str) -> DimensionCounts:
    return DimensionCounts.from_dict({"order_id": "o-1", "dimension": dimension, "key": key,
                                      "windows": {}})


def test_risk_observations_and_answers_travel_in_groups_of_their_domain_records():
    group = (_observation(Dimension.DEVICE, "dev-1"), _observation(Dimension.IP, "ip-1"))
    raw = topics.RISK_OBSERVATIONS_TOPIC.encode(group)
    assert raw == wire.dumps({"observations": [item.to_dict() for item in group]})
    assert topics.RISK_OBSERVATIONS_TOPIC.decode(raw) == group
    answers = (_answer("device", "dev-1"), _answer("ip", "ip-1"))
    assert topics.RISK_ANSWERS_TOPIC.decode(topics.RISK_ANSWERS_TOPIC.encode(answers)) == answers


def test_an_observation_or_answer_written_before_grouping_reads_as_a_group_of_one():
    observation = _observation(Dimension.DEVICE, "dev-1")
    assert topics.RISK_OBSERVATIONS_TOPIC.decode(wire.dumps(observation.to_dict())) == (
        observation,)
    answer = _answer("device", "dev-1")
    assert topics.RISK_ANSWERS_TOPIC.decode(wire.dumps(answer.to_dict())) == (answer,)


@pytest.mark.parametrize("spec", [topics.RISK_OBSERVATIONS_TOPIC, topics.RISK_ANSWERS_TOPIC])
def test_an_empty_group_is_an_invalid_record(spec):
    field = "observations" if spec is topics.RISK_OBSERVATIONS_TOPIC else "answers"
    with pytest.raises(InvalidRecord, match="an empty group"):
        spec.decode(wire.dumps({field: []}))


@pytest.mark.parametrize(("raw", "says"), [
    (b"not json", "invalid literal"),
    (b'{"kind": "line"}', "'data'"),
    (b'{"kind": "nonsense", "at": 1, "data": {}}', "'nonsense'"),
    (b"[1]", "list indices"),
    (None, "zero-length"),
])
def test_what_is_not_the_record_is_a_value_error_the_stage_can_dead_letter(raw, says):
    with pytest.raises(ValueError, match=says):
        topics.RECON_INPUTS_TOPIC.decode(raw)


def test_a_missing_field_is_an_invalid_record_naming_it():
    with pytest.raises(InvalidRecord, match="'received_at'"):
        topics.PAYMENTS_TOPIC.decode(wire.dumps(payment_event("o-1").to_dict()))


def test_every_internal_topic_a_stage_reads_has_its_codec_and_contract_topics_have_none():
    runtime_owned = {topics.ORDERS_REPARTITION, topics.TICKS}
    for spec in topics.TOPICS:
        internal = spec.name.startswith("topup.internal.") and spec.name not in runtime_owned
        assert (spec.codec is not None) == internal, spec.name
    with pytest.raises(TypeError, match="no internal codec"):
        topics.BY_NAME[topics.ORDERS].encode({})
