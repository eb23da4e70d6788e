"""Every client over SASL_PLAINTEXT/SCRAM-SHA-256, on a real broker with TOPUP_KAFKA_SASL=1."""

from __future__ import annotations

import time

from bench.harness import recreate_topics as reset_topics
from streams import topics
from tests.builders import order_event, payment_event
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import HMAC_SECRETS
from tests.kafka_harness import (
    decode_all,
    free_port,
    read_until,
    settings_from,
    start_dedicated_broker,
)

PASSWORD = "scram-pw-71c4"


def test_a_worker_over_sasl_scram_credits_an_order_and_a_wrong_password_is_named(
        kafka_env, workers, tmp_path):
    sasl_port = free_port()
    broker = start_dedicated_broker(
        tmp_path / "kafka", TOPUP_KAFKA_SASL="1", TOPUP_KAFKA_SASL_PORT=str(sasl_port),
        TOPUP_KAFKA_SASL_USERNAME="topup", TOPUP_KAFKA_SASL_PASSWORD=PASSWORD)
    try:
        security = {
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{sasl_port}",
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "KAFKA_SASL_USERNAME": "topup",
        }
        password_file = tmp_path / "kafka-password"
        password_file.write_text(PASSWORD)
        env = {**kafka_env, **security, "KAFKA_SASL_PASSWORD_FILE": str(password_file)}
        settings = settings_from(env)
        reset_topics(settings)  # the admin client, over SASL
        worker = workers.start("sasl", **security, KAFKA_SASL_PASSWORD_FILE=str(password_file),
                               TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS))
        flow = Flow(settings)  # tools' producer, over SASL
        flow.order(order_event("ord-sasl"))
        flow.callback(payment_event("ord-sasl"))
        flow.flush()
        records = read_until(settings, [topics.CREDITS], lambda rs: len(rs) >= 1,
                             workers=[worker])
        assert [c["order_id"] for c in decode_all(records, topics.CREDITS)] == ["ord-sasl"]

        bad = workers.start("bad", **security, KAFKA_SASL_PASSWORD="not-the-password")
        deadline = time.monotonic() + 90
        while bad.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        log = bad.log()
        assert bad.process.poll() not in (None, 0), log[-2000:]
        [reason] = [line for line in log.splitlines()
                    if line.startswith("streams.admin.KafkaUnreachable: cannot use Kafka at")]
        assert "Authentication failed" in reason, log[-2000:]
        assert "not-the-password" not in log and PASSWORD not in worker.log()
    finally:
        broker.stop()
