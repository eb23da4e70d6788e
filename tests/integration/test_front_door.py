"""The public listener over raw sockets: split and chunked bodies, size limits, slowloris."""

from __future__ import annotations

import contextlib
import gzip
import random
import socket
import time
from collections import Counter

from streams import topics
from streams.domain.common.payments import PaymentEvent
from streams.providers.testing import (
    SignedDelivery,
    make_hmac_delivery,
    make_stripe_delivery,
    make_wechatpay_delivery,
)
from tests.builders import order_event, payment
from tests.integration.flow import Flow
from tests.integration.intake_fixtures import (
    APIV3_KEY,
    HMAC_SECRETS,
    STRIPE_SECRET,
    provider_secrets,
)
from tests.kafka_harness import decode_all, http, read_until, settings_from, wait_for_http

PROVIDERS = ("hmac", "stripe", "wechatpay")


def _request(provider: str, delivery: SignedDelivery, *, chunked: bool = False,
             extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    lines = [f"POST /webhooks/{provider} HTTP/1.1", "Host: guard.test", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in delivery.headers.items()]
    lines += [f"{name}: {value}" for name, value in extra]
    body = delivery.body
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        pieces = [body[i:i + 100] for i in range(0, len(body), 100)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _status(sock: socket.socket) -> int:
    reply = b""
    while b"\r\n" not in reply:
        data = sock.recv(4096)
        if not data:
            break
        reply += data
    return int(reply.split(b" ", 2)[1])


def _send_in_segments(port: int, raw: bytes, rng: random.Random) -> int:
    """The request in 2 to 10 segments (cuts anywhere, headers too), a few ms apart."""
    cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(1, 9)))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True):
            sock.sendall(raw[start:end])
            time.sleep(rng.uniform(0.001, 0.02))
        return _status(sock)


def _delivery(provider: str, event: PaymentEvent, wechat_key) -> SignedDelivery:  # type: ignore[no-untyped-def]
    now = int(time.time())
    if provider == "hmac":
        return make_hmac_delivery(event, HMAC_SECRETS[0], timestamp=now)
    if provider == "stripe":
        return make_stripe_delivery(event, STRIPE_SECRET, timestamp=now)
    return make_wechatpay_delivery(event, wechat_key, APIV3_KEY, timestamp=now)


def test_split_and_chunked_callbacks_are_stored_whole_and_credited_once(
        kafka_env, workers, tmp_path):
    settings = settings_from(kafka_env)
    secrets = provider_secrets(tmp_path)
    worker = workers.start(**secrets.env)
    wait_for_http(worker)
    rng = random.Random(13)
    flow = Flow(settings)
    sent: dict[str, SignedDelivery] = {}
    for provider in PROVIDERS:
        for i in range(4):
            order_id = f"ord-split-{provider}-{i}"
            event = payment(order_id, f"evt-split-{provider}-{i}", provider=provider)
            flow.order(order_event(order_id, provider=provider, currency=event.currency,
                                   merchant_id=event.merchant_id, amount_minor=1000))
            sent[order_id] = _delivery(provider, event, secrets.wechat_key)
    flow.flush()

    for order_id, delivery in sent.items():
        # Every fourth one chunked, the rest with Content-Length; all split in segments.
        raw = _request(delivery.provider, delivery, chunked=order_id.endswith("-3"),
                       extra=(("X-Trace", "first"), ("X-Trace", "second")))
        assert _send_in_segments(worker.webhook_port, raw, rng) == 202, order_id

    records = read_until(
        settings, [topics.WEBHOOKS, topics.CREDITS],
        lambda rs: sum(r.topic == topics.CREDITS for r in rs) >= len(sent), workers=[worker])
    stored = decode_all(records, topics.WEBHOOKS)
    assert sorted(d["body"] for d in stored) == sorted(d.body for d in sent.values())
    assert all(d["headers"]["x-trace"] == "first, second" for d in stored)
    credits = Counter(c["order_id"] for c in decode_all(records, topics.CREDITS))
    assert credits == dict.fromkeys(sent, 1)
    assert worker.process.poll() is None


def test_oversized_bodies_get_413_and_balances_need_the_operator_token(kafka_env, workers):
    worker = workers.start(TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS),
                           TOPUP_WEBHOOK_MAX_BODY_BYTES="65536",
                           TOPUP_OPERATOR_TOKEN="op-token-1")
    wait_for_http(worker)
    balance = f"http://127.0.0.1:{worker.web_port}/accounts/acct-1/balance"
    assert http("GET", balance)[0] == 401
    assert http("GET", balance, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert http("GET", balance, headers={"Authorization": "Bearer op-token-1"})[0] in (200, 421)
    assert http("GET", f"http://127.0.0.1:{worker.web_port}/metrics")[0] == 200
    public_balance = f"http://127.0.0.1:{worker.webhook_port}/accounts/acct-1/balance"
    assert http("GET", public_balance)[0] in (404, 405)

    # A compressed body is stored as sent, with its content-encoding, never inflated.
    plain = make_hmac_delivery(payment("ord-gzip", "evt-gzip"), HMAC_SECRETS[0],
                               timestamp=int(time.time()))
    packed = SignedDelivery("hmac", {**plain.headers, "content-encoding": "gzip"},
                            gzip.compress(plain.body))
    with socket.create_connection(("127.0.0.1", worker.webhook_port), timeout=30) as sock:
        sock.sendall(_request("hmac", packed))
        assert _status(sock) == 202
    stored = read_until(settings_from(kafka_env), [topics.WEBHOOKS], lambda rs: len(rs) >= 1,
                        workers=[worker])
    [delivery] = decode_all(stored, topics.WEBHOOKS)
    assert delivery["body"] == packed.body
    assert delivery["headers"]["content-encoding"] == "gzip"
    big = SignedDelivery("hmac", {"content-type": "application/json"}, b"x" * 200_000)
    for chunked in (False, True):
        raw = _request("hmac", big, chunked=chunked)
        with socket.create_connection(("127.0.0.1", worker.webhook_port), timeout=30) as sock:
            head, body = raw.split(b"\r\n\r\n", 1)
            sock.sendall(head + b"\r\n\r\n")
            try:
                for i in range(0, len(body), 1024):  # 1 KB at a time, as the probe did
                    sock.sendall(body[i:i + 1024])
            except OSError:
                pass  # the server may close as soon as it has answered 413
            assert _status(sock) == 413, f"chunked={chunked}"


def test_slowloris_connections_are_cut_and_callbacks_go_through(kafka_env, workers):
    settings = settings_from(kafka_env)
    worker = workers.start(TOPUP_HMAC_SECRETS=",".join(HMAC_SECRETS),
                           TOPUP_WEBHOOK_HEADER_TIMEOUT_S="2",
                           TOPUP_WEBHOOK_MAX_CONNECTIONS="40")
    wait_for_http(worker)
    # More slow connections than the cap: each sends a header line only now and then.
    slow = [socket.create_connection(("127.0.0.1", worker.webhook_port), timeout=10)
            for _ in range(60)]
    for sock in slow:
        sock.sendall(b"POST /webhooks/hmac HTTP/1.1\r\n")
    flow = Flow(settings)
    for i in range(5):
        flow.order(order_event(f"ord-slow-{i}"))
    flow.flush()

    accepted = 0
    rng = random.Random(7)
    for i in range(5):
        for sock in slow:  # the attack keeps trickling while real callbacks arrive
            with contextlib.suppress(OSError):
                sock.sendall(b"X-a: b\r\n")
        delivery = make_hmac_delivery(payment(f"ord-slow-{i}", f"evt-slow-{i}"),
                                      HMAC_SECRETS[0], timestamp=int(time.time()))
        accepted += _send_in_segments(worker.webhook_port, _request("hmac", delivery), rng) == 202
    assert accepted == 5

    # Past the header timeout every slow connection has been closed by the server.
    deadline = time.monotonic() + 15
    open_left = set(range(len(slow)))
    while open_left and time.monotonic() < deadline:
        for index in list(open_left):
            slow[index].settimeout(0.05)
            try:
                if slow[index].recv(1024) == b"":
                    open_left.discard(index)
            except TimeoutError:
                pass
            except OSError:
                open_left.discard(index)
    assert not open_left, f"{len(open_left)} slow connections still open"
    for sock in slow:
        sock.close()

    records = read_until(settings, [topics.CREDITS], lambda rs: len(rs) >= 5, workers=[worker])
    assert Counter(c["order_id"] for c in decode_all(records, topics.CREDITS)) == {
        f"ord-slow-{i}": 1 for i in range(5)}
    assert worker.process.poll() is None
