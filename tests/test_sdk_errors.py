"""The Python SDK's typed errors and its flush retry policy against a real emulator and daemon,
spoken to over the daemon's unix socket (no mock of the daemon). hostd/sdk/errors.py promises a
POS can branch on the class and read what it needs: ``Unauthorized`` (no or a wrong token),
``Forbidden`` (a token of another outlet), ``RateLimited.retry_after`` (the 4th two-phase PREPARE
of one terminal: its share is 3 of 10 slots), ``FiscalizationFailed.device_code`` (the device
refuses an invoice dated 2099). None of these may seal anything: the device counter stays 0.

The SDK has no prepare call, so the 429 is reached through ``Client.call``, the one place every
SDK call turns an envelope into its typed error. The flush retry schedule (``retry_delays``,
``sleep``) is checked on real failures: a stopped daemon, then one that comes back (sealed once),
and a full journal with archiving off (503 with Retry-After 2, which outranks a shorter delay).
"""

import http.server
import json
import threading

import pytest

from hostd.sdk import errors
from hostd.sdk.client import Client
from hostd.sdk.queue import OfflineQueue
from hostd.sdk.transport import request
from tests.daemonkit import Stack, sample

pytestmark = pytest.mark.slow

KIN = "kin-till-token-aaaaaaaa"        # scoped to outlet-kin001, the sample invoice's outlet
OTHER = "other-till-token-bbbbbbb"     # scoped to another outlet
DELAYS = (0.01, 0.02, 0.03)


def doc(**changes):
    return json.loads(sample(**changes))


def counter(client):
    return client.call("GET", "/api/v1/outlets/local/status")["payload"]["counter"]


@pytest.fixture(scope="module")
def tokened(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sdk-errors")
    (tmp / "tokens").write_text("%s outlet-kin001\n%s outlet-other\n" % (KIN, OTHER))
    stack = Stack(tmp)
    stack.start_daemon(extra=["--tokens-file", str(tmp / "tokens")])
    yield stack, Client(socket=stack.socket, token=KIN)
    stack.close()


@pytest.mark.parametrize("token", [None, "wrong-token-zzzzzzzzzzzz"])
def test_no_token_or_a_wrong_one_is_unauthorized(tokened, token):
    stack, till = tokened
    with pytest.raises(errors.SdkError) as info:
        Client(socket=stack.socket, token=token).invoices.create(doc(cashier_id="no-auth"))
    assert type(info.value) is errors.Unauthorized and info.value.status == 401
    assert info.value.field == "Authorization" and info.value.envelope["code"] == "UNAUTHORIZED"
    assert counter(till) == 0


def test_a_token_of_another_outlet_is_forbidden(tokened):
    stack, till = tokened
    with pytest.raises(errors.SdkError) as info:
        Client(socket=stack.socket, token=OTHER).invoices.create(doc(cashier_id="other-outlet"))
    assert type(info.value) is errors.Forbidden
    assert info.value.status == 403 and info.value.field == "outlet_id" and "outlet-kin001" in info.value.detail
    assert counter(till) == 0


def test_the_fourth_prepare_of_a_terminal_is_rate_limited_with_retry_after(tokened):
    stack, till = tokened
    for i in range(3):
        assert till.call("POST", "/api/v1/invoices/prepare", body=sample(cashier_id="p-%d" % i), key="p-%d" % i)
    with pytest.raises(errors.SdkError) as info:
        till.call("POST", "/api/v1/invoices/prepare", body=sample(cashier_id="p-3"), key="p-3")
    exc = info.value
    assert type(exc) is errors.RateLimited and exc.status == 429 and exc.retryable
    status, headers, _ = request(stack.socket, "POST", "/api/v1/invoices/prepare", sample(cashier_id="p-4"),
                                 {"Authorization": "Bearer " + KIN, "Idempotency-Key": "p-4"})
    assert status == 429 and exc.retry_after >= 1
    assert exc.retry_after == int(exc.retry_after) == exc.envelope["retry_after"] == int(headers["Retry-After"])
    status = till.call("GET", "/api/v1/outlets/local/status")["payload"]
    assert status["pending"] == 3 and status["counter"] == 0       # the refused PREPAREs hold no slot


def test_an_invoice_the_device_refuses_is_fiscalization_failed_with_its_device_code(tokened):
    _, till = tokened
    with pytest.raises(errors.SdkError) as info:
        till.invoices.create(doc(cashier_id="future", timestamp="2099-01-01T00:00:00Z"), idempotency_key="f-1")
    assert type(info.value) is errors.FiscalizationFailed and info.value.status == 422
    assert info.value.device_code == "INVOICE_TIME_WINDOW"
    assert counter(till) == 0


def queued_client(stack, tmp_path, slept, sleep=None):
    return Client(socket=stack.socket, queue=OfflineQueue(str(tmp_path / "queue.sqlite")), retry_delays=DELAYS,
                  sleep=sleep or slept.append)


def test_flush_retries_on_its_schedule_and_seals_once_when_the_daemon_is_back(tmp_path):
    stack = Stack(tmp_path)
    try:
        stack.start_daemon()
        stack.stop_daemon()
        slept = []

        def sleep(seconds):
            slept.append(seconds)
            if len(slept) == 2:
                stack.start_daemon()                               # back before the third attempt
        client = queued_client(stack, tmp_path, slept, sleep)
        handle = client.invoices.create(doc(cashier_id="offline"))
        assert handle.status == "queued" and slept == []           # create tries once, never waits
        assert client.queue.flush() == {"fiscalized": 1, "error": 0, "queued": 0}
        assert slept == [0.01, 0.02]                               # no Retry-After from a daemon away
        assert [d["status"] for d in client.queue.queue.drafts()] == ["fiscalized"]
        assert counter(client) == 1
    finally:
        stack.close()


def test_flush_honours_retry_after_of_a_full_journal_and_keeps_the_draft(tmp_path):
    stack = Stack(tmp_path, journal_kib=32)
    try:
        stack.start_daemon(extra=["--archive-at", "0"])            # archiving off: the journal stays full
        plain, sealed = Client(socket=stack.socket), 0
        while sealed < 1000:
            try:
                plain.invoices.create(doc(cashier_id="fill-%d" % sealed), idempotency_key="fill-%d" % sealed)
            except errors.DeviceUnavailable as exc:
                assert exc.status == 503 and exc.envelope["device_code"] == "JOURNAL_FULL" and exc.retry_after == 2
                break
            sealed += 1
        slept, waiting = [], []
        client = queued_client(stack, tmp_path, slept)
        client.hooks["queued"] = waiting.append
        handle = client.invoices.create(doc(cashier_id="full"))
        assert client.queue.flush() == {"fiscalized": 0, "error": 0, "queued": 1}
        assert len(slept) >= 2 and set(slept) == {2.0}             # max(0.01 s, Retry-After 2 s)
        assert [d["status"] for d in client.queue.queue.drafts()] == ["queued"]
        assert [d["id"] for d in waiting] == [handle.id, handle.id]   # create, then the flush gave up
        assert counter(plain) == sealed
    finally:
        stack.close()


def test_flush_gives_up_after_one_retry_per_delay(tmp_path):
    """The first try, then a retry after each delay: 100 ms -> 5 s -> 20 s by default, 3 retries
    (seed 003; the browser SDK does the same). It once stopped one retry short."""
    stack = Stack(tmp_path)
    try:
        stack.start_daemon()
        stack.stop_daemon()                                        # away for the whole flush
        slept = []
        client = queued_client(stack, tmp_path, slept)
        client.invoices.create(doc(cashier_id="never"))
        assert client.queue.flush() == {"fiscalized": 0, "error": 0, "queued": 1}
        assert slept == list(DELAYS)                               # a wait before each of 3 retries
        assert client.queue.queue.drafts()[0]["attempts"] == 1 + 1 + len(DELAYS)
    finally:
        stack.close()


def test_retry_after_comes_from_the_header_when_the_envelope_leaves_it_out():
    """A proxy or another daemon version may send Retry-After without the envelope field: the
    SDK then takes the header (RFC 9110 10.2.3), as the browser SDK does."""
    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "error", "code": "RATE_LIMIT_EXCEEDED", "detail": "busy"}).encode()
            self.send_response(429)
            self.send_header("Retry-After", "7")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = Client(base_url="http://127.0.0.1:%d" % server.server_address[1])
        with pytest.raises(errors.RateLimited) as raised:
            client.call("GET", "/api/v1/tax-groups")
        assert raised.value.retry_after == 7
    finally:
        server.shutdown()
        server.server_close()
