"""Issue 14: the Python SDK against the real daemon: seal/get/list, the offline queue (daemon
stopped, 20 drafts, restart, flush in order exactly once, also with the flush killed half way),
a corrupt queue, typed errors, webhook verification, and the totals helper against the device's
own rule on 10^4 generated carts."""

import base64
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostd.books import signing
from hostd.sdk import errors
from hostd.sdk.builders import InvoiceBuilder
from hostd.sdk.client import Client, Queued
from hostd.sdk.queue import OfflineQueue
from protocol import cbor, invoice
from hostd.intake.canonical import parse_invoice
from tests.daemonkit import Stack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cart(cashier="sdk", timestamp=None):
    b = InvoiceBuilder("123456789", "OUTLET-42", "POS-SDK", cashier, timestamp=timestamp)
    b.client("Acme Ltd", "A-1", "Company")
    b.item("CONS-001", 2, "500.00", "TG03", "Consulting hours", "hour")
    b.item("SKU-9", "1.5", "10.00", "TG02", "Cable", "m", discount="0.01")
    b.pay("mobile_money", instrument_id="AIRTEL-001")
    return b


@pytest.fixture()
def stack(tmp_path):
    s = Stack(tmp_path)
    s.start_daemon()
    yield s
    s.close()


@pytest.mark.slow
def test_seal_get_list_and_typed_errors(stack):
    client = Client(socket=stack.socket)
    sealed = client.invoices.create(cart(), idempotency_key="sdk-1")
    assert sealed["fiscal_number"] and sealed["counter"] == 1
    assert client.invoices.create(cart(), idempotency_key="sdk-1") == sealed        # retry-safe
    got = client.invoices.get(sealed["fiscal_number"])
    assert got["auth_code"] == sealed["auth_code"] and got["invoice"]["totals"]["total"] == cart().build()["totals"]["total"]
    assert [i["fiscal_number"] for i in client.invoices.list(outlet_id="OUTLET-42")] == [sealed["fiscal_number"]]
    bad = cart().build()
    bad["totals"]["total"] = "1.00"
    with pytest.raises(errors.InvalidPayload) as info:
        client.invoices.create(bad)
    assert info.value.field == "totals.total" and info.value.status == 400
    with pytest.raises(errors.IdempotencyKeyReused):
        client.invoices.create(cart("other"), idempotency_key="sdk-1")
    with pytest.raises(errors.NotFound):
        client.invoices.get("NOPE-1")
    assert [g["code"] for g in client.tax_groups.list()][:3] == ["TG01", "TG02", "TG03"]


@pytest.mark.slow
def test_twenty_drafts_queued_while_the_daemon_is_down_are_sealed_in_order_exactly_once(stack, tmp_path):
    queue_path = str(tmp_path / "queue.sqlite")
    seen = {"queued": 0, "fiscalized": []}
    client = Client(socket=stack.socket, queue=OfflineQueue(queue_path), retry_delays=(0.01, 0.01, 0.01),
                    on_queued=lambda d: seen.__setitem__("queued", seen["queued"] + 1),
                    on_fiscalized=lambda d, p: seen["fiscalized"].append(p["fiscal_number"]))
    stack.stop_daemon()
    handles = [client.invoices.create(cart("off-%02d" % i)) for i in range(20)]
    assert all(isinstance(h, Queued) for h in handles) and seen["queued"] == 20
    assert not any(hasattr(h, "fiscal_number") for h in handles)         # never a number it did not get
    assert client.queue.flush()["queued"] == 20                          # still down: order kept, nothing lost
    stack.start_daemon()
    assert client.queue.flush() == {"fiscalized": 20, "error": 0, "queued": 0}
    numbers = seen["fiscalized"]
    assert len(numbers) == 20 and numbers == sorted(numbers)
    drafts = OfflineQueue(queue_path).drafts()
    for draft, number in zip(drafts, numbers):
        assert json.loads(draft["response"])["fiscal_number"] == number
        assert json.loads(draft["body"])["cashier_id"] == "off-%02d" % drafts.index(draft)
    status, listing = stack.pos.get("/api/v1/invoices?per_page=200")
    assert len(listing["payload"]) == 20                                 # exactly once


FLUSH = """
import sys, time
from hostd.sdk.client import Client
from hostd.sdk.queue import OfflineQueue
client = Client(socket=sys.argv[1], queue=OfflineQueue(sys.argv[2]), retry_delays=(0.01,),
                on_fiscalized=lambda d, p: (print(p["fiscal_number"], flush=True), time.sleep(0.05)))
print(client.queue.flush(), flush=True)
"""


@pytest.mark.slow
def test_a_flush_killed_half_way_and_run_again_seals_nothing_twice(stack, tmp_path):
    queue_path = str(tmp_path / "queue.sqlite")
    client = Client(socket=stack.socket, queue=OfflineQueue(queue_path), retry_delays=(0.01,))
    stack.stop_daemon()
    bodies = [client.invoices.create(cart("kill-%02d" % i)) for i in range(20)]
    stack.start_daemon()
    proc = subprocess.Popen([sys.executable, "-c", FLUSH, stack.socket, queue_path], stdout=subprocess.PIPE,
                            cwd=ROOT, text=True)
    printed = [proc.stdout.readline() for _ in range(8)]
    os.kill(proc.pid, signal.SIGKILL)                                    # half way
    proc.wait()
    assert all(line.strip() for line in printed)
    again = subprocess.run([sys.executable, "-c", FLUSH, stack.socket, queue_path], capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
    assert again.returncode == 0, again.stderr
    status, listing = stack.pos.get("/api/v1/invoices?per_page=200")
    cashiers = [i["invoice"]["cashier_id"] for i in listing["payload"]]
    assert cashiers == ["kill-%02d" % i for i in range(20)]             # in order, each exactly once
    assert len(bodies) == 20


def test_a_corrupt_queue_raises_after_its_export(tmp_path):
    path = str(tmp_path / "queue.sqlite")
    queue = OfflineQueue(path)
    queue.add(b'{"ok": 1}', "k1")
    queue.storage.conn.execute("UPDATE drafts SET body=? WHERE idempotency_key='k1'", (b"{broken",))
    queue.storage.close()
    with pytest.raises(errors.OfflineQueueCorrupt) as info:
        OfflineQueue(path)
    exported = json.load(open(info.value.export))
    assert exported["drafts"][0]["idempotency_key"] == "k1" and exported["drafts"][0]["body"] == "{broken"
    fresh = OfflineQueue.reset(path)
    assert fresh.drafts() == []
    fresh.storage.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    with open(path, "wb") as fh:                                         # not even SQLite
        fh.write(b"garbage" * 100)
    with pytest.raises(errors.OfflineQueueCorrupt) as info:
        OfflineQueue(path)
    assert os.path.exists(info.value.export)


def test_webhooks_verify_accepts_a_signed_delivery_and_refuses_a_changed_one():
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = b'{"event":"invoice.sealed","fiscal_number":"EMU-1-00000001"}'
    headers = signing.headers(secret, "msg_1", int(time.time()), body)
    client = Client(socket="/nonexistent")
    assert client.webhooks.verify(body, headers, secret)["fiscal_number"] == "EMU-1-00000001"
    with pytest.raises(errors.InvalidSignature):
        client.webhooks.verify(body.replace(b"00000001", b"00000002"), headers, secret)


def test_an_unreachable_daemon_without_a_queue_is_device_unavailable(tmp_path):
    with pytest.raises(errors.DeviceUnavailable):
        Client(socket=str(tmp_path / "none.sock")).invoices.create(cart())


amount = st.integers(0, 10 ** 7).map(lambda m: "%d.%02d" % divmod(m, 100))
line = st.tuples(st.integers(1, 20000), amount, st.sampled_from(["TG01", "TG02", "TG03", "TG04", "TG14"]),
                 st.integers(0, 500))


@settings(max_examples=10000, deadline=None)
@given(st.lists(line, min_size=1, max_size=5), st.booleans())
def test_the_totals_helper_agrees_with_the_device_on_generated_carts(lines, inclusive):
    b = InvoiceBuilder("1", "o", "t", "c", prices_include_tax=inclusive, timestamp="2026-12-01T10:00:00Z")
    for qty, price, group, discount in lines:
        minor = int(price.replace(".", ""))
        gross = invoice.round_half_up(qty * minor, 1000)
        b.item("X", "%d.%03d" % divmod(qty, 1000), price, group, discount="%d.%02d" % divmod(min(discount, gross), 100))
    doc = b.build()
    parsed = parse_invoice(json.dumps(doc).encode())                     # the host's check ...
    assert invoice.check(cbor.decode(parsed.canonical))["total"] == parsed.summary["total"]   # ... and the device's
    assert parsed.summary["total"] == b.totals()["total"]
