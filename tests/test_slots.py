"""Issue 8: the device's pending PREPARE slots are shared fairly, and none leaks when the store
cannot record a PREPARE."""

import json
import sqlite3
import time

import pytest

from hostd.intake.canonical import to_canonical
from hostd.errors import StoreUnavailable
from hostd.owner.owner import Owner
from hostd.store.store import Store
from tests.daemonkit import Stack, sample
from tests.devkit import Bench
from tests.test_owner import CoreClient, add


def pending(bench):
    return bench.ok("INFO")["pending"]


def test_a_prepare_the_store_cannot_record_is_aborted_at_once(tmp_path, monkeypatch):
    """Two-phase PREPARE (one-call seals use SEAL and hold no slot): the device holds a nonce the
    store cannot record (disk full); it is aborted at once, and the next PREPARE succeeds."""
    bench = Bench()
    store = Store(str(tmp_path / "fiscal.sqlite"))
    owner = Owner("memory", store, client_factory=lambda path, timeout, on_sent: CoreClient(bench, on_sent=on_sent))
    add(store, "2p:full", sample(cashier_id="full"))
    real = store.set_prepared

    def disk_full(*args):
        raise sqlite3.OperationalError("database or disk is full")
    monkeypatch.setattr(store, "set_prepared", disk_full)
    with pytest.raises(StoreUnavailable):
        owner.prepare("2p:full", 5)
    assert pending(bench) == 0 and owner.slots.orphans == []   # the slot is back now, not at nonce expiry
    assert store.request("2p:full")["state"] == "new"
    monkeypatch.setattr(store, "set_prepared", real)            # space returns
    prepared = owner.prepare("2p:full", 5)                      # the very next PREPARE succeeds
    assert prepared["state"] == "prepared" and pending(bench) == 1
    status, body = owner.seal("2p:full", 5)
    assert status == 200 and json.loads(body)["payload"]["counter"] == 1


def test_an_orphan_the_device_cannot_hear_is_aborted_before_the_next_job(tmp_path, monkeypatch):
    bench = Bench()
    store = Store(str(tmp_path / "fiscal.sqlite"))
    owner = Owner("memory", store, client_factory=lambda path, timeout, on_sent: CoreClient(bench, on_sent=on_sent))
    owner.device(time.monotonic() + 5)                          # connected: the clock is set
    nonce = bench.prepare(to_canonical(sample())[0])[1]["nonce"]
    owner.slots.orphan(nonce)                                  # as if ABORT had failed on a lost link
    assert pending(bench) == 1
    add(store, "1p:next", sample(cashier_id="next"))
    assert owner.run(owner.seal, "1p:next", 5).result()[0] == 200
    assert owner.slots.orphans == [] and pending(bench) == 0


@pytest.mark.slow
def test_one_terminal_holding_its_share_leaves_room_for_the_others(tmp_path):
    stack = Stack(tmp_path)
    try:
        stack.start_daemon()                                   # 10 slots: a terminal's share is 3
        for i in range(3):
            status, _ = stack.pos.post("/api/v1/invoices/prepare", sample(cashier_id="held-%d" % i), key="a-%d" % i)
            assert status == 200
        status, data = stack.pos.post("/api/v1/invoices/prepare", sample(cashier_id="held-3"), key="a-3")
        doc = json.loads(data)
        assert status == 429 and doc["field"] == "pos_terminal_id" and doc["retry_after"] >= 1
        other = dict(pos_terminal_id="POS-OTHER")
        status, sealed = stack.pos.seal(sample(cashier_id="b-1", **other), key="b-1")
        assert status == 200, sealed                           # another terminal seals at once
        status, _ = stack.pos.post("/api/v1/invoices/prepare", sample(cashier_id="b-2", **other), key="b-2")
        assert status == 200                                   # and can still prepare
        status, st = stack.pos.get("/api/v1/outlets/local/status")
        assert st["payload"]["pending"] == 4
    finally:
        stack.close()


@pytest.mark.slow
def test_a_scoped_token_holds_its_share_over_all_the_terminals_it_names(tmp_path):
    """Issue 8, "per token where tokens are scoped": a client that names a new terminal for each
    PREPARE still holds at most its share; another token (and a token of every outlet, which
    is held to the terminal share only) can still prepare."""
    tokens = tmp_path / "tokens"
    tokens.write_text("till-token-aaaaaaaaaa outlet-kin001\nother-token-bbbbbbbbbb outlet-kin001\nback-office-cccccccccc *\n")
    stack = Stack(tmp_path)
    try:
        stack.start_daemon(extra=["--tokens-file", str(tokens)])          # 10 slots: a share is 3

        def prepare(token, i, terminal):
            return stack.pos.post("/api/v1/invoices/prepare", sample(cashier_id="t-%s-%d" % (token[:4], i),
                                                                     pos_terminal_id=terminal),
                                  key="%s-%d" % (token[:4], i), headers={"Authorization": "Bearer " + token})
        for i in range(3):
            status, data = prepare("till-token-aaaaaaaaaa", i, "POS-%d" % i)   # a new terminal each time
            assert status == 200, data
        status, data = prepare("till-token-aaaaaaaaaa", 3, "POS-3")
        doc = json.loads(data)
        assert status == 429 and doc["field"] == "Authorization" and doc["retry_after"] >= 1, doc
        assert "this token holds 3 open PREPAREs" in doc["detail"]
        status, data = prepare("other-token-bbbbbbbbbb", 0, "POS-3")         # another token: its own share
        assert status == 200, data
        for i in range(3):                                                   # '*': terminals only
            status, data = prepare("back-office-cccccccccc", i, "BO-%d" % i)
            assert status == 200, data
        store = Store(stack.db)
        callers = {row["caller"] for row in store.db.execute("SELECT caller FROM requests")}
        assert None in callers and len(callers - {None}) == 2               # two scoped labels
        assert not any(c and ("aaaa" in c or "bbbb" in c) for c in callers)  # a label, never the token
    finally:
        stack.close()
