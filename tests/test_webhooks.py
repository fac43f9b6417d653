"""Issue 12: signed webhooks from a durable outbox, to a real receiver on 127.0.0.1."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from hostd.books import signing
from hostd.errors import VerificationFailed
from tests.daemonkit import Stack, sample
from tests.webhookkit import Receiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def subscribe(stack, url, **more):
    doc = {"url": url, "events": ["invoice.sealed"], "secret": SECRET, "active": True,
           "signature_header": "X-KutaPay-Signature"}
    doc.update(more)
    status, data = stack.pos.post("/api/v1/webhooks", json.dumps(doc).encode())
    assert status == 201, data
    return json.loads(data)["payload"]["id"]


def check_signatures(headers, body):
    """What a receiver does: Standard Webhooks, and the seed's hex HMAC header."""
    msg_id = signing.verify(SECRET, headers, body)
    key = base64.b64decode(SECRET[len("whsec_"):])
    assert headers["X-KutaPay-Signature"] == hmac.new(key, body, hashlib.sha256).hexdigest()
    return msg_id


def seal(stack, key, deadline):
    """Seal like a POS: retry with the same key until the daemon answers (it may be restarting)."""
    while True:
        try:
            status, doc = stack.pos.seal(sample(cashier_id=key), key=key)
            if status == 200:
                return doc["payload"]["fiscal_number"]
        except Exception:   # noqa: the daemon is down between a kill and its restart
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


@pytest.mark.slow
def test_200_seals_with_10_kills_lose_no_event_and_duplicate_only_by_webhook_id(tmp_path):
    receiver = Receiver()
    stack = Stack(tmp_path)
    try:
        stack.start_daemon(extra=["--webhook-retry", "0.1"])
        subscribe(stack, receiver.url)
        deadline = time.monotonic() + 240
        numbers = []
        for i in range(200):
            numbers.append(seal(stack, "wh-%d" % i, deadline))
            if i % 20 == 10:                                   # ten kill -9 during the run
                stack.kill_daemon()
                stack.start_daemon(extra=["--webhook-retry", "0.1"])
        assert len(set(numbers)) == 200

        def complete(deliveries):
            return {json.loads(b)["fiscal_number"] for _, b, _ in deliveries} >= set(numbers)
        assert receiver.wait_for(complete, 120), "events lost"
        by_id = {}
        for headers, body, _ in receiver.deliveries:
            msg_id = check_signatures(headers, body)
            event = json.loads(body)
            assert event["event"] == "invoice.sealed"
            by_id.setdefault(msg_id, set()).add(event["fiscal_number"])
        assert all(len(v) == 1 for v in by_id.values())         # a duplicate always has the same webhook-id
        assert sorted(n for v in by_id.values() for n in v) == sorted(numbers)
    finally:
        stack.close()
        receiver.close()


@pytest.mark.slow
def test_a_receiver_down_three_times_gets_the_event_when_it_recovers(tmp_path):
    receiver = Receiver(statuses=[500, 500, 500])
    gone = Receiver(statuses=[410])
    dead = Receiver(statuses=[503] * 10)
    stack = Stack(tmp_path)
    try:
        stack.start_daemon(extra=["--webhook-retry", "0.1"])
        hook = subscribe(stack, receiver.url, events=["invoice.fiscalized"])
        gone_hook = subscribe(stack, gone.url)
        dead_hook = subscribe(stack, dead.url, max_attempts=2)
        number = seal(stack, "flaky", time.monotonic() + 30)
        assert receiver.wait_for(lambda d: any(s == 200 for _, _, s in d), 60)
        assert [s for _, _, s in receiver.deliveries] == [500, 500, 500, 200]
        event = json.loads(receiver.deliveries[-1][1])
        assert event["event"] == "invoice.fiscalized" and event["fiscal_number"] == number   # the seed's name
        assert len({signing.verify(SECRET, h, b) for h, b, _ in receiver.deliveries}) == 1  # one webhook-id
        deadline = time.monotonic() + 30   # the attempt is stored just after the receiver answered
        while stack.pos.get("/api/v1/webhooks/%s/deliveries" % hook)[1]["payload"][0]["state"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status, log = stack.pos.get("/api/v1/webhooks/%s/deliveries" % hook)
        entry = log["payload"][0]
        assert entry["state"] == "delivered" and [a["status"] for a in entry["attempts"]] == [500, 500, 500, 200]

        assert gone.wait_for(lambda d: len(d) == 1, 30)
        deadline = time.monotonic() + 30
        while stack.pos.get("/api/v1/webhooks/%s" % gone_hook)[1]["payload"]["active"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "410" in stack.pos.get("/api/v1/webhooks/%s" % gone_hook)[1]["payload"]["disabled_reason"]

        deadline = time.monotonic() + 30
        while stack.pos.get("/api/v1/webhooks/%s/deliveries" % dead_hook)[1]["payload"][0]["state"] != "dead":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert len(dead.deliveries) == 2                       # dead-lettered after max_attempts
    finally:
        stack.close()
        for r in (receiver, gone, dead):
            r.close()


@pytest.mark.slow
def test_subscriptions_are_checked_and_secrets_never_shown(tmp_path):
    stack = Stack(tmp_path)
    try:
        stack.start_daemon()
        for bad, field in [({"url": "ftp://x"}, "url"), ({"events": ["invoice.eaten"]}, "events"),
                           ({"secret": "short"}, "secret"), ({"signature_header": "Bad Header"}, "signature_header"),
                           ({"secret": "whsec_not*base64!!!!!"}, "secret")]:
            doc = {"url": "http://127.0.0.1:9/h", "events": ["invoice.sealed"], "secret": SECRET, "active": True}
            doc.update(bad)
            status, data = stack.pos.post("/api/v1/webhooks", json.dumps(doc).encode())
            assert status == 400 and json.loads(data)["field"] == field, data
        hook = subscribe(stack, "http://127.0.0.1:9/h")
        status, listed = stack.pos.get("/api/v1/webhooks")
        assert SECRET not in json.dumps(listed) and listed["payload"][0]["id"] == hook
        from hostd.sdk.transport import request
        status, _, data = request(stack.socket, "DELETE", "/api/v1/webhooks/%s" % hook)
        assert status == 200 and stack.pos.get("/api/v1/webhooks/%s" % hook)[0] == 404
    finally:
        stack.close()


def test_standard_webhooks_signatures_verify_and_refuse_changes():
    body = b'{"event":"invoice.sealed"}'
    now = int(time.time())
    headers = signing.headers(SECRET, "msg_1", now, body, "X-Stalela-Signature")
    assert signing.verify(SECRET, headers, body) == "msg_1"
    for broken in (body + b" ", ):
        with pytest.raises(VerificationFailed):
            signing.verify(SECRET, headers, broken)
    with pytest.raises(VerificationFailed):
        signing.verify(SECRET, dict(headers, **{"webhook-timestamp": str(now - 3600)}), body)
    # the vector every Standard Webhooks library tests against (libraries/go/webhook_test.go, TestWebhookSign)
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    example = signing.signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert example == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_device_events_are_emitted_once_per_transition(tmp_path):
    from hostd.owner.watch import DeviceWatch
    from hostd.store.outbox import Outbox
    from hostd.store.store import Store
    store = Store(str(tmp_path / "fiscal.sqlite"))
    Outbox(store).add_webhook({"url": "http://127.0.0.1:9/h", "events": ["device.lost", "device.found",
                               "device.fault", "device.journal_fill"], "secret": SECRET, "active": True,
                               "signature_header": None, "max_attempts": 3}, time.time())
    watch = DeviceWatch(store)
    info = {"device_id": "EMU-1", "counter": 3, "fault": "", "journal_used": 10, "journal_size": 100}
    watch.found(info)                                   # first connect: nothing was lost
    watch.lost("EMU-1", "link lost")
    watch.lost("EMU-1", "still gone")                   # once per outage
    watch.found(info)
    watch.seen(dict(info, journal_used=85))
    watch.seen(dict(info, journal_used=86))             # 80 % announced once
    watch.seen(dict(info, journal_used=96, fault="JOURNAL_FULL"))
    watch2 = DeviceWatch(store)                         # a restart does not announce 95 % again
    watch2.seen(dict(info, journal_used=97, fault="JOURNAL_FULL"))
    kinds = [json.loads(r["payload"])["event"] for r in
             store.conn().execute("SELECT payload FROM events ORDER BY created").fetchall()]
    assert kinds == ["device.lost", "device.found", "device.journal_fill", "device.fault", "device.journal_fill",
                     "device.fault"]
    levels = [json.loads(r["payload"]).get("level") for r in
              store.conn().execute("SELECT payload FROM events WHERE type='device.journal_fill' ORDER BY created")]
    assert levels == [80, 95]
