"""The daemon end to end: real processes, HTTP over a real unix socket, the real emulator."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from hostd.cli.demo import start_up, stop_up
from protocol import verify
from tests.daemonkit import Pos, Stack, sample, wait_for_socket


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.close()


@pytest.fixture
def up(tmp_path):
    profile = str(tmp_path / "profile")
    socket_path = str(tmp_path / "api.sock")
    proc = start_up(profile, socket_path)
    wait_for_socket(socket_path, proc)
    yield profile, socket_path, Pos(socket_path)
    stop_up(proc)


def export_records(pos):
    status, doc = pos.get("/api/v1/audit/export")
    assert status == 200
    return doc


def verified_with_public_key_only(export_doc):
    """Check the journal with nothing but the exported public key and protocol/verify.py."""
    records = [bytes.fromhex(r) for r in export_doc["records"]]
    return verify.verify_records(records, bytes.fromhex(export_doc["public_key"]))


def test_fiscal_up_seals_both_seed_shapes_over_curl(up):
    profile, socket_path, pos = up
    out = []
    for name in ("invoice-002-services.json", "invoice-000-goods.json"):
        result = subprocess.run(["curl", "-sS", "--unix-socket", socket_path, "-H", "Content-Type: application/json",
                                 "-H", "Idempotency-Key: curl-%s" % name, "--data-binary",
                                 "@" + os.path.join(os.path.dirname(os.path.dirname(__file__)), "samples", name),
                                 "http://localhost/api/v1/invoices"], capture_output=True, check=True)
        out.append(json.loads(result.stdout))
    assert [doc["code"] for doc in out] == ["INVOICE_FISCALIZED"] * 2
    assert [doc["payload"]["counter"] for doc in out] == [1, 2]
    summary = verified_with_public_key_only(export_records(pos))
    assert summary["invoices"] == 2
    # Each sealed answer carries its signed record; it is byte-for-byte the journal's.
    records = export_records(pos)["records"]
    for doc in out:
        assert doc["payload"]["signed_record"] + doc["payload"]["signature"] in records


@pytest.mark.parametrize("flow,step", [("1p", "after_commit_sent"), ("1p", "after_commit_answered"),
                                       ("2p", "after_prepare"), ("2p", "after_commit_sent"),
                                       ("2p", "after_commit_answered")])
def test_kill9_daemon_at_each_step_then_retry(stack, flow, step):
    """One call (SEAL: killed with the frame out, or with the answer read but not stored) and two
    phase (killed after PREPARE, after COMMIT was sent, after it was answered): the POS's retry
    with the same key always gets one seal, byte for byte."""
    stack.start_daemon(crash_at=step)
    body = sample(cashier_id="crash-%s-%s" % (flow, step))
    key = "K-%s-%s" % (flow, step)

    nonce = []

    def seal():
        if flow == "1p":
            return stack.pos.post("/api/v1/invoices", body, key=key)
        if not nonce:                           # the POS keeps the nonce its prepare answered
            status, data = stack.pos.post("/api/v1/invoices/prepare", body, key=key)
            assert status == 200, data
            nonce.append(json.loads(data)["payload"]["nonce"])
        return stack.pos.post("/api/v1/invoices/commit", json.dumps({"nonce": nonce[0]}).encode())
    with pytest.raises(Exception):
        seal()                                  # the daemon dies under this request
    assert stack.daemon.wait(10) == -signal.SIGKILL
    stack.start_daemon()
    status, data = seal()
    first = json.loads(data)
    assert status == 200 and first["payload"]["counter"] == 1, first
    assert seal() == (status, data)             # byte-identical replay
    status, second = stack.pos.seal(sample(cashier_id="after"), key="K2-%s-%s" % (flow, step))
    assert second["payload"]["counter"] == 2
    summary = verified_with_public_key_only(export_records(stack.pos))
    assert summary["invoices"] == 2 and summary["counter"] == 2


def test_restarted_daemon_reconciles_with_the_device_journal(stack):
    """A seal the daemon never recorded (killed after COMMIT) is filed at start, before any retry."""
    stack.start_daemon(crash_at="after_commit_answered")
    with pytest.raises(Exception):
        stack.pos.seal(sample(), key="lost-reply")
    stack.daemon.wait(10)
    stack.start_daemon()
    deadline = time.monotonic() + 10
    while stack.pos.get("/api/v1/invoices/1")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    status, doc = stack.pos.get("/api/v1/invoices/1")
    assert status == 200 and doc["payload"]["invoice"]["cashier_id"] == "cashier-13"


def test_emulator_restart_under_load_seals_each_invoice_once(up):
    profile, socket_path, pos = up
    results = {}

    def client(i):
        try:
            results[i] = pos.seal(sample(cashier_id="load-%d" % i), key="load-%d" % i)
        except Exception as exc:   # the connection itself may fail; the retry below settles it
            results[i] = (0, {"code": type(exc).__name__})
    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads[:6]:
        t.start()
    with open(os.path.join(profile, "emu.pid")) as fh:
        os.kill(int(fh.read()), signal.SIGKILL)    # fiscal up restarts it; the daemon reconnects
    for t in threads[6:]:
        t.start()
    for t in threads:
        t.join(60)
    for i in results:
        status, doc = results[i]
        assert status in (200, 503, 0), (status, doc)
        if status == 503:
            assert doc["code"] in ("DEVICE_UNAVAILABLE", "DEVICE_TIMEOUT")
    counters = []
    for i in range(12):
        status, doc = pos.seal(sample(cashier_id="load-%d" % i), key="load-%d" % i)   # POS retries
        assert status == 200, doc
        counters.append(doc["payload"]["counter"])
    assert sorted(counters) == list(range(1, 13))
    assert verified_with_public_key_only(export_records(pos))["invoices"] == 12


def test_twenty_concurrent_clients_no_gap_no_duplicate(up):
    _, _, pos = up
    results = [None] * 20

    def client(i):
        results[i] = pos.seal(sample(cashier_id="c-%02d" % i), key="c-%02d" % i)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r[0] == 200 for r in results), results
    assert sorted(r[1]["payload"]["counter"] for r in results) == list(range(1, 21))
    assert len({r[1]["payload"]["fiscal_number"] for r in results}) == 20
    assert verified_with_public_key_only(export_records(pos))["invoices"] == 20
