"""Issue 10, the daemon's side of journal v2, end to end with real processes: a small journal that
archives and reclaims itself through 5,000 invoices, a full journal with archiving off, and a
store deleted between a seal and its retry."""

import json
import os
import subprocess
import sys
import time

import pytest

from hostd.books.export import load_export, verify_export
from hostd.sdk.transport import request
from hostd.store.archive import Archive
from hostd.store.store import Store
from tests.daemonkit import Stack, sample, utc_now

pytestmark = pytest.mark.slow


def batch(stack, first, count):
    items = [{"idempotency_key": "j-%d" % i, "invoice": json.loads(sample(cashier_id="j-%d" % i))}
             for i in range(first, first + count)]
    status, data = stack.pos.post("/api/v1/invoices/batch", json.dumps({"invoices": items}).encode(), timeout=300)
    assert status == 200, data
    return json.loads(data)["payload"]["results"]


def export(stack):
    status, _, data = request(stack.socket, "GET", "/api/v1/audit/export", timeout=120)
    assert status == 200, data
    return data


def test_a_64_kib_journal_seals_5000_invoices_archiving_by_itself(tmp_path):
    stack = Stack(tmp_path / "a", journal_kib=64)
    try:
        stack.start_daemon()
        counters = []
        for first in range(0, 5000, 500):
            results = batch(stack, first, 500)
            assert {r["http_status"] for r in results} == {200}, [r for r in results if r["http_status"] != 200][:2]
            counters += [r["response"]["payload"]["counter"] for r in results]
        assert counters == list(range(1, 5001))                       # all accepted, consecutive
        status, st = stack.pos.get("/api/v1/outlets/local/status")
        assert st["payload"]["first_live"] > 1 and st["payload"]["journal_fill"] < 0.95   # it reclaimed
        segments = Archive(Store(stack.db), os.path.join(os.path.dirname(stack.db), "archive")).segments()
        assert len(segments) >= 10 and all(s["acknowledged"] for s in segments)
        path = tmp_path / "export.json"
        path.write_bytes(export(stack))
        done = subprocess.run([sys.executable, "-m", "hostd", "verify", str(path), "--json"], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        summary = json.loads(done.stdout)
        assert summary["invoices"] == 5000 and summary["counter"] == 5000
        assert load_export(path.read_bytes())["from_seq"] == 1           # archive plus live journal
    finally:
        stack.close()


def test_a_full_journal_with_archiving_off_refuses_before_a_nonce_and_still_serves(tmp_path):
    stack = Stack(tmp_path / "b", journal_kib=32)
    try:
        stack.start_daemon(extra=["--archive-at", "0"])
        sealed = 0
        while True:
            status, doc = stack.pos.seal(sample(cashier_id="f-%d" % sealed), key="f-%d" % sealed)
            if status != 200:
                break
            sealed += 1
            assert sealed < 1000
        assert status == 503 and doc["device_code"] == "JOURNAL_FULL", doc
        status, data = stack.pos.post("/api/v1/invoices/prepare", sample(cashier_id="two-phase"), key="tp")
        assert status == 503 and json.loads(data)["device_code"] == "JOURNAL_FULL"
        status, st = stack.pos.get("/api/v1/outlets/local/status")
        assert st["payload"]["pending"] == 0                          # no nonce was issued
        stack.kill_daemon()
        stack.restart_emulator(seed=6)                                # a power cycle of the full device
        stack.start_daemon(extra=["--archive-at", "0"])
        status, st = stack.pos.get("/api/v1/outlets/local/status")
        assert status == 200 and st["payload"]["counter"] == sealed
        summary = verify_export(load_export(export(stack)))
        assert summary["invoices"] == sealed
    finally:
        stack.close()


def _lose_the_store(stack):
    stack.stop_daemon()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(stack.db + suffix):
            os.unlink(stack.db + suffix)
    stack.start_daemon()


def test_a_lost_store_never_seals_a_retry_twice(tmp_path):
    """A POS that dates its own invoices sends the same bytes again: the device finds the request
    id it already sealed with that very invoice hash and answers that seal, and the retry files the
    invoice's content the lost store no longer had."""
    stack = Stack(tmp_path / "c")
    try:
        stack.start_daemon()
        body = sample(cashier_id="lost", timestamp=utc_now())   # dated once: a retry sends the same bytes
        status, first = stack.pos.seal(body, key="lost-store")
        assert status == 200
        _lose_the_store(stack)
        status, again = stack.pos.seal(body, key="lost-store")
        assert status == 200
        assert again["payload"]["fiscal_number"] == first["payload"]["fiscal_number"]
        assert again["payload"]["auth_code"] == first["payload"]["auth_code"]
        summary = verify_export(load_export(export(stack)))
        assert summary["invoices"] == 1 and summary["counter"] == 1    # one record for it
        status, got = stack.pos.get("/api/v1/invoices/%s" % first["payload"]["fiscal_number"])
        assert status == 200 and got["payload"]["invoice"]["cashier_id"] == "lost"   # the retry completed it
    finally:
        stack.close()


def test_a_lost_store_and_an_undated_retry_never_seal_twice(tmp_path):
    """An invoice without a timestamp is dated by the daemon as it accepts it; with the store lost,
    the retry of the same bytes is dated again, so its canonical invoice is not the one sealed.
    The device refuses the request id for another invoice (REQUEST_ID_REUSED, naming the fiscal
    number it sealed): still one seal, and the POS is told which; the invoice stays filed from
    the journal without its content (README, "If the store is lost")."""
    stack = Stack(tmp_path / "u")
    try:
        stack.start_daemon()
        body = sample(cashier_id="undated")
        status, answer = stack.pos.post("/api/v1/invoices", body, key="lost-undated")
        assert status == 200
        number = json.loads(answer)["payload"]["fiscal_number"]
        dated = stack.pos.get("/api/v1/invoices/%s" % number)[1]["payload"]["invoice"]["timestamp"]
        while utc_now() <= dated:   # a retry is dated in a later second than the sealed invoice
            time.sleep(0.05)
        # while the store has the request, the retry is answered from it, byte for byte
        assert stack.pos.post("/api/v1/invoices", body, key="lost-undated") == (200, answer)
        _lose_the_store(stack)
        for _ in range(2):          # the refusal is the key's final answer
            status, again = stack.pos.seal(body, key="lost-undated")
            assert (status, again["code"], again["device_code"]) == (422, "FISCALIZATION_FAILED", "REQUEST_ID_REUSED")
            assert number in again["detail"]
        summary = verify_export(load_export(export(stack)))
        assert summary["invoices"] == 1 and summary["counter"] == 1    # sealed once
        status, got = stack.pos.get("/api/v1/invoices/%s" % number)
        assert status == 200 and got["payload"]["invoice"] is None     # filed from the journal alone
    finally:
        stack.close()


def test_a_z_closure_archives_the_closed_day_by_itself(tmp_path):
    """Issue 10: the daemon archives after each daily closure, not only at the fill mark: right
    after the Z is answered, a segment up to the Z is written, acknowledged by ARCHIVED, and the
    device checkpoints there; sealing goes on and the whole history still verifies."""
    stack = Stack(tmp_path / "z")        # a 2 MiB journal: 40 invoices are far below the 50 % mark
    try:
        stack.start_daemon()
        assert {r["http_status"] for r in batch(stack, 0, 40)} == {200}
        status, data = stack.pos.post("/api/v1/reports", json.dumps({"type": "Z"}).encode(), timeout=60)
        assert status == 201, data
        closed = json.loads(data)["payload"]["closure_seq"]
        archive = Archive(Store(stack.db), os.path.join(os.path.dirname(stack.db), "archive"))
        deadline = time.monotonic() + 30
        while archive.acknowledged_seq() < closed and time.monotonic() < deadline:
            time.sleep(0.1)
        assert archive.acknowledged_seq() == closed          # everything up to the Z, nothing after it
        status, st = stack.pos.get("/api/v1/outlets/local/status")
        assert st["payload"]["archived_seq"] == closed and st["payload"]["journal_fill"] < 0.5
        assert {r["http_status"] for r in batch(stack, 40, 10)} == {200}
        summary = verify_export(load_export(export(stack)))
        assert summary["invoices"] == 50 and summary["counter"] == 50
    finally:
        stack.close()
