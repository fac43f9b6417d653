"""The POS API: validation with the seed's codes and the field at fault, hostile clients, the
two-phase flow, reads. One `fiscal up` serves the whole module."""

import json
import socket
import time

import pytest

from hostd.cli.demo import start_up, stop_up
from tests.daemonkit import Pos, sample, wait_for_socket


@pytest.fixture(scope="module")
def pos(tmp_path_factory):
    base = tmp_path_factory.mktemp("api")
    socket_path = str(base / "api.sock")
    proc = start_up(str(base / "profile"), socket_path)
    wait_for_socket(socket_path, proc)
    yield Pos(socket_path)
    stop_up(proc)


INVALID = [
    (dict(merchant_nif=None), "INVALID_CANONICAL_PAYLOAD", "merchant_nif"),
    (dict(invoice_type="refund"), "INVALID_CANONICAL_PAYLOAD", "invoice_type"),
    (dict(timestamp="17/02/2026"), "INVALID_CANONICAL_PAYLOAD", "timestamp"),
    (dict(client__classification="Alien"), "INVALID_CANONICAL_PAYLOAD", "client.classification"),
    (dict(items__0__tax_group="TG99"), "INVALID_CANONICAL_PAYLOAD", "items[0].tax_group"),
    (dict(items__0__unit_price="500.001"), "INVALID_CANONICAL_PAYLOAD", "items[0].unit_price"),
    (dict(items__0__quantity=-1), "INVALID_CANONICAL_PAYLOAD", "items[0].quantity"),
    (dict(tax_groups__0__rate="0.15"), "INVALID_CANONICAL_PAYLOAD", "tax_groups[0].rate"),
    (dict(tax_groups__0__base_amount="999.00"), "INVALID_CANONICAL_PAYLOAD", "tax_groups[0].base_amount"),
    (dict(tax_groups__0__tax_amount="161.00"), "INVALID_CANONICAL_PAYLOAD", "tax_groups[0].tax_amount"),
    (dict(tax_groups__0__code="TG02"), "INVALID_CANONICAL_PAYLOAD", "tax_groups"),
    (dict(totals__total="1161.00"), "INVALID_CANONICAL_PAYLOAD", "totals.total"),
    (dict(totals__currency="XAF"), "INVALID_CANONICAL_PAYLOAD", "totals.currency"),
    (dict(payments__0__amount="1000.00"), "INVALID_CANONICAL_PAYLOAD", "payments"),
    (dict(payments__0__currency="USD"), "INVALID_CANONICAL_PAYLOAD", "payments[0].currency"),
]


@pytest.mark.parametrize("changes,code,field", INVALID)
def test_invalid_payloads_get_code_and_field(pos, changes, code, field):
    status, doc = pos.seal(sample(**changes))
    assert status == 400, doc
    assert doc["status"] == "error" and doc["code"] == code
    assert doc["field"] == field, doc["detail"]


def test_wrong_field_order_and_missing_field(pos):
    doc = json.loads(sample())
    reordered = dict([("outlet_id", doc.pop("outlet_id"))] + list(doc.items()))
    status, answer = pos.seal(json.dumps(reordered).encode())
    assert status == 400 and answer["field"] == "merchant_nif" and "order" in answer["detail"]
    del doc["payments"]
    doc = dict([("merchant_nif", doc.pop("merchant_nif")), ("outlet_id", reordered["outlet_id"])] + list(doc.items()))
    status, answer = pos.seal(json.dumps(doc).encode())
    assert status == 400 and answer["field"] == "payments"
    status, answer = pos.seal(b"{not json")
    assert status == 400 and answer["code"] == "INVALID_CANONICAL_PAYLOAD"


def test_idempotency_key_with_another_body_is_refused(pos):
    assert pos.seal(sample(cashier_id="idem-1"), key="idem")[0] == 200
    status, doc = pos.seal(sample(cashier_id="idem-2"), key="idem")
    assert status == 422 and doc["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_device_refusal_is_422(pos):
    old = sample(timestamp="2020-01-01T00:00:00Z")   # before the tax manifest is in force
    status, doc = pos.seal(old)
    assert status == 400 and doc["field"] == "items[0].tax_group"


def test_big_slow_and_malformed_clients_do_not_stop_others(pos):
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.connect(pos.socket)
    slow.sendall(b"POST /api/v1/invoices HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"a\"")
    bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bad.connect(pos.socket)
    bad.sendall(b"\x16\x03\x01 this is not http\r\n\r\n")
    bad.settimeout(5)
    assert bad.recv(100).split(b" ")[1] == b"400"   # refused alone; nobody else notices
    status, data = pos.post("/api/v1/invoices", b"{" + b" " * (1024 * 1024) + b"}")
    assert status == 413 and json.loads(data)["code"] == "PAYLOAD_TOO_LARGE"
    started = time.monotonic()
    status, doc = pos.seal(sample(cashier_id="while-slow"), key="while-slow")
    assert status == 200 and time.monotonic() - started < 10
    slow.close()
    bad.close()


def test_two_phase_prepare_commit_and_abort(pos):
    status, prepared = pos.post("/api/v1/invoices/prepare", sample(cashier_id="2p"), key="2p-1")
    prepared = json.loads(prepared)
    assert status == 200 and prepared["code"] == "INVOICE_PREPARED"
    assert prepared["payload"]["state"] == "prepared" and prepared["payload"]["summary"]["total"] == 116000
    nonce = prepared["payload"]["nonce"]
    status, sealed = pos.post("/api/v1/invoices/commit", json.dumps({"nonce": nonce}).encode())
    assert status == 200 and json.loads(sealed)["code"] == "INVOICE_FISCALIZED"
    assert pos.post("/api/v1/invoices/commit", json.dumps({"nonce": nonce}).encode()) == (status, sealed)
    status, other = pos.post("/api/v1/invoices/prepare", sample(cashier_id="2p-abort"), key="2p-2")
    nonce = json.loads(other)["payload"]["nonce"]
    status, aborted = pos.post("/api/v1/invoices/abort", json.dumps({"nonce": nonce}).encode())
    assert status == 200 and json.loads(aborted)["payload"]["state"] == "aborted"
    status, refused = pos.post("/api/v1/invoices/commit", json.dumps({"nonce": nonce}).encode())
    assert status == 422 and json.loads(refused)["device_code"] == "NONCE_ABORTED"
    status, unknown = pos.post("/api/v1/invoices/commit", json.dumps({"nonce": "00" * 16}).encode())
    assert status == 422 and json.loads(unknown)["field"] == "nonce"


def test_reads_list_get_verify_tax_groups_status(pos):
    for i in range(3):
        assert pos.seal(sample(cashier_id="list-%d" % i, client__nif="NIF-LIST"), key="list-%d" % i)[0] == 200
    status, listed = pos.get("/api/v1/invoices?client.nif=NIF-LIST&per_page=2&sort=-fiscal_number")
    assert status == 200 and len(listed["payload"]) == 2
    numbers = [p["counter"] for p in listed["payload"]]
    assert numbers == sorted(numbers, reverse=True)
    status, page2 = pos.get("/api/v1/invoices?client.nif=NIF-LIST&per_page=2&page=2&sort=-fiscal_number")
    assert len(page2["payload"]) == 1
    fiscal_number = listed["payload"][0]["fiscal_number"]
    status, got = pos.get("/api/v1/invoices/" + fiscal_number)
    assert status == 200 and got["payload"]["invoice"]["client"]["nif"] == "NIF-LIST"
    assert got["payload"]["dgi_status"] == "queued"
    status, checked = pos.get("/api/v1/verify/" + fiscal_number)
    assert checked["payload"]["valid"] is True
    assert pos.get("/api/v1/invoices/NOPE-1")[0] == 404
    status, groups = pos.get("/api/v1/tax-groups")
    assert [g["code"] for g in groups["payload"]] == ["TG%02d" % i for i in range(1, 15)]
    assert groups["payload"][1]["rate"] == "0.160000"
    status, state = pos.get("/api/v1/outlets/outlet-kin001/status")
    assert state["payload"]["device_state"] == "ready" and state["payload"]["counter"] >= 3
    assert 0 < state["payload"]["journal_fill"] < 1
    status, bad = pos.get("/api/v1/invoices?sort=price")
    assert status == 400 and bad["field"] == "sort"
