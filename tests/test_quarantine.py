"""Issue 8: a record the reconciler cannot file never stops the daemon. It is quarantined and
reported; sealing, status and exports go on, across restarts; the POS still gets its number."""

import json
import sqlite3

import pytest

from hostd.books.export import load_export, verify_export
from hostd.owner.owner import Owner
from hostd.store.store import Store
from tests.daemonkit import Stack, sample
from tests.devkit import Bench
from tests.test_owner import CoreClient, add


def legacy_bom_row(db, fiscal_number):
    """Turn the store into what the first daemon left after a BOM body: the request row holds the
    body as text with a BOM and no filing columns, and the invoice was never filed."""
    conn = sqlite3.connect(db)
    with conn:
        row = conn.execute("SELECT seq FROM invoices WHERE fiscal_number=?", (fiscal_number,)).fetchone()
        conn.execute("UPDATE requests SET invoice_json='\ufeff' || invoice_json, merchant_nif=NULL, outlet_id=NULL, "
                     "terminal=NULL, client_nif=NULL, invoice_type=NULL, timestamp=NULL WHERE key='1p:legacy'")
        conn.execute("DELETE FROM invoices WHERE fiscal_number=?", (fiscal_number,))
        conn.execute("UPDATE meta SET v=? WHERE k='filed_seq'", (json.dumps(row[0] - 1),))
    conn.close()


@pytest.mark.slow
def test_an_unfileable_record_is_quarantined_and_sealing_goes_on_across_restarts(tmp_path):
    stack = Stack(tmp_path)
    try:
        stack.start_daemon()
        status, first = stack.pos.seal(sample(cashier_id="legacy"), key="legacy")
        assert status == 200
        number = first["payload"]["fiscal_number"]
        stack.stop_daemon()
        legacy_bom_row(stack.db, number)

        for round_ in range(2):                               # the quarantine survives a restart
            stack.start_daemon()
            status, doc = stack.pos.seal(sample(cashier_id="next-%d" % round_), key="next-%d" % round_)
            assert status == 200, doc                         # sealing goes on
            status, st = stack.pos.get("/api/v1/outlets/local/status")
            assert status == 200
            held = st["payload"]["quarantined"]
            assert held["count"] == 1 and held["records"][0]["fiscal_number"] == number
            assert "JSONDecodeError" in held["records"][0]["reason"]
            status, got = stack.pos.get("/api/v1/invoices/%s" % number)
            assert status == 200 and got["code"] == "INVOICE_QUARANTINED"
            assert got["payload"]["auth_code"] == first["payload"]["auth_code"]
            status, retry = stack.pos.seal(sample(cashier_id="legacy"), key="legacy")
            assert status == 200 and retry["payload"]["fiscal_number"] == number   # the POS gets its number
            from hostd.sdk.transport import request
            status, _, export = request(stack.socket, "GET", "/api/v1/audit/export")
            assert status == 200
            summary = verify_export(load_export(export))
            assert summary["invoices"] == 2 + round_
            stack.stop_daemon()
    finally:
        stack.close()


def test_an_undecodable_mirrored_record_is_quarantined_in_process(tmp_path, caplog):
    bench = Bench()
    store = Store(str(tmp_path / "fiscal.sqlite"))
    owner = Owner("memory", store, client_factory=lambda path, timeout, on_sent: CoreClient(bench, on_sent=on_sent))
    add(store, "1p:a", sample(cashier_id="a"))
    assert owner.seal("1p:a", 5)[0] == 200
    # a mirror row that no longer decodes (a disk bit flip, an old bug): filing it again fails
    conn = store.conn()
    conn.execute("UPDATE journal SET record=? WHERE seq=(SELECT MAX(seq) FROM journal)", (b"\x00garbage" * 10,))
    store.set_meta("filed_seq", 0)
    owner._drop()
    add(store, "1p:b", sample(cashier_id="b"))
    assert owner.seal("1p:b", 5)[0] == 200
    count, rows = store.quarantined()
    assert count == 1 and rows[0]["fiscal_number"] is None and "VerifyError" in rows[0]["reason"]
    assert any("quarantined" in r.getMessage() and r.levelname == "ERROR" and r.name == "fiscal.owner"
               for r in caplog.records)   # the log names it (hostd/daemon/logs.py formats it)
    assert store.meta("filed_seq") == store.journal_seq()   # filing moved past it


def test_a_sealed_answer_that_cannot_be_filed_still_reaches_the_pos(tmp_path, monkeypatch):
    bench = Bench()
    store = Store(str(tmp_path / "fiscal.sqlite"))
    owner = Owner("memory", store, client_factory=lambda path, timeout, on_sent: CoreClient(bench, on_sent=on_sent))
    add(store, "1p:a", sample(cashier_id="a"))

    def broken(*args):
        raise ValueError("a filing bug")
    monkeypatch.setattr(store, "record_sealed", broken)
    status, body = owner.seal("1p:a", 5)
    assert status == 200 and json.loads(body)["payload"]["counter"] == 1
    monkeypatch.undo()
    assert store.quarantined()[0] == 1
    assert owner.seal("1p:a", 5) == (status, body)
