"""Sync to the authority (issue 12): the real ``fiscal authority serve`` on 127.0.0.1, the real
daemon and a provisioned emulator as separate processes.

- every invoice of a run reaches ``synced`` (with ``acknowledged_at``, its event, and the
  authority holding the same ledger hash); with the authority down they stay ``queued`` and catch
  up when it returns; the authority's copy verifies as a whole chain;
- the authority refuses a forged record, a record re-signed with another key (with or without a
  certificate for that key), a gap, a duplicated-but-different record and uploads without a
  trusted certificate, each with its typed error; valid uploads go on after every refusal and
  after the authority restarts;
- with sync on, the device erases only what the authority holds;
- over HTTPS with the authority's own certificate, refusals make invoices ``failed`` (with their
  events) until ``POST /api/v1/sync/retry`` once the cause is fixed.
"""

import json
import os
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from device.signer import Signer
from hostd.boards import authority as ca
from hostd.books import upload
from hostd.books.keys import fast_verifier
from hostd.daemon.supervisor import start_emulator, stop_emulator
from hostd.errors import ConfigError, UploadRefused
from protocol import record, verify
from tests.daemonkit import Pos, sample, wait_for_socket
from tests.devkit import T0, Bench, encode_invoice, make_invoice

FISCAL = [sys.executable, "-m", "hostd"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, doc=None):
    data = None if doc is None else json.dumps(doc).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class AuthorityServer:
    """``fiscal authority serve`` as a subprocess; ``stop``/``start`` keep its store."""

    def __init__(self, tmp_path, trusted, port=None):
        self.db = str(tmp_path / "authority.sqlite")
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.trusted = trusted
        self.proc = None

    def start(self):
        args = FISCAL + ["authority", "serve", "--db", self.db, "--listen", "127.0.0.1:%d" % self.port]
        for folder in self.trusted:
            args += ["--trust", folder]
        self.proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if http("GET", self.url + "/health")[0] == 200:
                    return self
            except OSError:
                pass
            assert self.proc.poll() is None, "the authority exited with %s" % self.proc.returncode
            assert time.monotonic() < deadline, "the authority did not start"
            time.sleep(0.1)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def post(self, device_id, doc):
        return http("POST", "%s/api/v1/devices/%s/records" % (self.url, device_id), doc)


def _fiscal(*args):
    proc = subprocess.run(FISCAL + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


class Outlet:
    """A provisioned emulator and a daemon syncing to ``url``."""

    def __init__(self, tmp_path, auth_dir, journal_kib=None):
        self.profile = str(tmp_path / "emu")
        extra = ["--factory-fresh", "--authority", os.path.join(auth_dir, "authority.pub")]
        if journal_kib:
            extra += ["--journal-kib", str(journal_kib)]
        self.emulator, self.pty = start_emulator(self.profile, extra)
        _fiscal("board", "provision", "--device", self.pty, "--authority", auth_dir, "--json")
        self.socket = str(tmp_path / "api.sock")
        self.db = str(tmp_path / "fiscal.sqlite")
        self.pos = Pos(self.socket)
        self.daemon = None

    def start_daemon(self, url, *extra):
        self.daemon = subprocess.Popen(FISCAL + ["daemon", "--device", self.pty, "--socket", self.socket, "--db",
                                                 self.db, "--sync-url", url, "--webhook-retry", "0.05"] + list(extra),
                                       stderr=subprocess.DEVNULL)
        wait_for_socket(self.socket, self.daemon)

    def close(self):
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(10)
        stop_emulator(self.emulator)

    def sync_state(self):
        code, doc = self.pos.get("/api/v1/sync")
        assert code == 200, doc
        return doc["payload"]

    def wait_synced(self, count, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            code, doc = self.pos.get("/api/v1/invoices?status=synced&per_page=100&page=1")
            state = self.sync_state()
            if code == 200 and state["queued_invoices"] == 0 and state["pending_records"] == 0 \
                    and self._synced() == count:
                return state
            assert time.monotonic() < deadline, (state, self._synced(), count)
            time.sleep(0.1)

    def _synced(self):
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            return conn.execute("SELECT COUNT(*) FROM invoices WHERE dgi_status='synced'").fetchone()[0]
        finally:
            conn.close()


@pytest.fixture
def auth_dir(tmp_path):
    folder = str(tmp_path / "authority-key")
    _fiscal("authority", "init", "--dir", folder)
    return folder


def _batch(pos, items):
    code, data = pos.post("/api/v1/invoices/batch", json.dumps({"invoices": items}).encode(), timeout=120)
    return code, json.loads(data)


def _seal_some(pos, n, prefix):
    numbers = []
    for i in range(n):
        code, doc = pos.seal(sample(), key="%s-%d" % (prefix, i))
        assert code == 200, doc
        numbers.append(doc["payload"]["fiscal_number"])
    return numbers


def test_every_invoice_reaches_synced_and_catches_up_after_an_outage(tmp_path, auth_dir):
    authority = AuthorityServer(tmp_path, [auth_dir]).start()
    outlet = Outlet(tmp_path, auth_dir)
    try:
        outlet.start_daemon(authority.url)
        numbers = _seal_some(outlet.pos, 12, "a")
        items = [{"idempotency_key": "b-%d" % i, "invoice": json.loads(sample())} for i in range(40)]
        code, doc = _batch(outlet.pos, items)
        assert code == 200 and all(r["http_status"] == 200 for r in doc["payload"]["results"]), doc
        numbers += [r["response"]["payload"]["fiscal_number"] for r in doc["payload"]["results"]]
        outlet.wait_synced(len(numbers))
        for number in numbers[:5] + numbers[-5:]:
            code, mine = outlet.pos.get("/api/v1/invoices/" + number)
            assert code == 200 and mine["payload"]["dgi_status"] == "synced", mine
            assert mine["payload"]["acknowledged_at"].endswith("Z")
            code, theirs = http("GET", authority.url + "/api/v1/invoices/" + number)
            assert code == 200 and theirs["ledger_hash"] == mine["payload"]["ledger_hash"], theirs
            assert theirs["canonical"]
        code, listed = outlet.pos.get("/api/v1/invoices?status=queued")
        assert code == 200 and listed["payload"] == []

        authority.stop()
        later = _seal_some(outlet.pos, 10, "c")
        time.sleep(1.0)
        state = outlet.sync_state()
        assert state["queued_invoices"] == 10 and state["last_error"], state
        assert state["stopped_at_seq"] is None and state["failed_invoices"] == 0
        code, listed = outlet.pos.get("/api/v1/invoices?status=queued&per_page=100")
        assert sorted(i["fiscal_number"] for i in listed["payload"]) == sorted(later)
        authority.start()
        outlet.wait_synced(len(numbers) + 10, timeout=90)

        conn = sqlite3.connect(outlet.db)
        events = conn.execute("SELECT COUNT(*) FROM events WHERE type='invoice.sync.success'").fetchone()[0]
        mirror = [bytes(r[0]) for r in conn.execute("SELECT record FROM journal ORDER BY seq")]
        conn.close()
        assert events == len(numbers) + 10
    finally:
        outlet.close()
        authority.stop()
    held = sqlite3.connect(authority.db)
    chain = [bytes(r[0]) for r in held.execute("SELECT record FROM records ORDER BY seq")]
    key = bytes(held.execute("SELECT public_key FROM devices").fetchone()[0])
    held.close()
    assert chain == mirror[:len(chain)] and len(chain) >= len(mirror) - 1
    summary = verify.verify_records(chain, key, fast_verifier(key))
    assert summary["invoices"] == len(numbers) + 10


# -- refusals, with records made by the in-memory device ----------------------------------------------------

def _bench_records(n):
    bench = Bench()
    bench.ok("SET_TIME", time=T0)
    canon = []
    for i in range(n):
        data = encode_invoice(make_invoice())
        status, _ = bench.seal(data)
        assert status == "OK"
        canon.append(data)
    records = bench.records()
    by_seq = {}
    it = iter(canon)
    for rec in records:
        if record.type_of(rec) == record.INVOICE:
            by_seq[record.decode(rec)[0][record.K_SEQ]] = next(it)
    return bench, records, by_seq


def _rows(records, canon, first, last):
    return [(s, records[s - 1], canon.get(s)) for s in range(first, last + 1)]


def _resign(rec, prev, signer):
    fields, body, _ = record.decode(rec)
    return body + signer.sign(record.signing_input(prev, body))


def test_authority_refuses_forged_resigned_gapped_and_uncertified_uploads(tmp_path, auth_dir):
    bench, records, canon = _bench_records(8)
    device = record.decode(records[0])[0][record.K_DEVICE]
    good = ca.issue(auth_dir, device, bench.public_key)
    other_dir = str(tmp_path / "other-authority")
    ca.init(other_dir)
    untrusted = ca.issue(other_dir, device, bench.public_key)
    authority = AuthorityServer(tmp_path, [auth_dir]).start()

    def send(first, last, cert=good, change=None):
        rows = _rows(records, canon, first, last)
        if change:
            rows = change(rows)
        return authority.post(device, upload.build(device, cert, rows))

    try:
        code, doc = send(1, 3, cert=None)
        assert (code, doc["code"], doc["field"]) == (403, "SYNC_CERTIFICATE", "certificate"), doc
        code, doc = send(1, 3, cert=untrusted)
        assert (code, doc["code"]) == (403, "SYNC_CERTIFICATE") and "does not trust" in doc["detail"], doc

        code, first = send(1, 3)
        assert code == 200 and [a["seq"] for a in first["acknowledged"]] == [1, 2, 3], first
        assert first["head"]["seq"] == 3
        code, again = send(1, 3)
        assert code == 200 and again["acknowledged"] == first["acknowledged"]   # idempotent

        code, doc = send(5, 6)
        assert (code, doc["code"], doc["expected_seq"]) == (409, "SYNC_GAP", 4), doc

        def flip(rows):
            seq, rec, c = rows[0]
            return [(seq, rec[:-70] + bytes([rec[-70] ^ 1]) + rec[-69:], c)] + rows[1:]
        code, doc = send(4, 5, change=flip)
        assert (code, doc["code"], doc["seq"]) == (422, "SYNC_FORGED", 4), doc

        prev3 = bytes.fromhex(first["acknowledged"][2]["hash"])
        stranger = Signer(bytes(range(1, 33)))

        def resigned(rows):
            seq, rec, c = rows[0]
            return [(seq, _resign(rec, prev3, stranger), c)] + rows[1:]
        code, doc = send(4, 5, change=resigned)
        assert (code, doc["code"], doc["rule"]) == (422, "SYNC_FORGED", "VERIFY_SIGNATURE"), doc
        their_cert = ca.issue(auth_dir, device, stranger.public_key())   # a valid certificate for the other key
        code, doc = send(4, 5, cert=their_cert, change=resigned)
        assert (code, doc["code"]) == (403, "SYNC_CERTIFICATE") and "another public key" in doc["detail"], doc

        def other_invoice(rows):
            return [(s, r, encode_invoice(make_invoice(lines=((1000, 1, "TG03"),))) if c else None) for s, r, c in rows]
        invoice_seq = min(s for s in canon if s >= 4)
        code, doc = send(4, invoice_seq, change=other_invoice)
        assert (code, doc["code"], doc["field"], doc["seq"]) == (422, "SYNC_FORGED", "canonical", invoice_seq), doc

        def changed_second(rows):
            seq, rec, c = rows[1]
            return [rows[0], (seq, _resign(rec, bytes.fromhex(first["acknowledged"][0]["hash"]), stranger), c)] + rows[2:]
        code, doc = send(1, 4, change=changed_second)
        assert (code, doc["code"], doc["seq"]) == (409, "SYNC_CONFLICT", 2), doc

        bad = upload.build(device, good, _rows(records, canon, 4, 4))
        bad["records"][0]["record"] = "zz"
        code, doc = authority.post(device, bad)
        assert (code, doc["code"], doc["field"]) == (400, "SYNC_INVALID", "records[0].record"), doc

        code, doc = send(4, 6, cert=None)   # a registered device needs no certificate again
        assert code == 200 and doc["head"]["seq"] == 6, doc
        authority.stop()
        authority.start()   # the walk is rebuilt from the store
        code, doc = send(7, len(records))
        assert code == 200 and doc["head"]["seq"] == len(records), doc
        code, doc = send(7, len(records) - 1, change=lambda rows: rows[:1] + [(rows[1][0], rows[1][1][:-1] +
                                                                               bytes([rows[1][1][-1] ^ 1]), rows[1][2])])
        assert (code, doc["code"], doc["seq"]) == (409, "SYNC_CONFLICT", 8), doc
        code, held = http("GET", "%s/api/v1/devices/%s" % (authority.url, device))
        assert code == 200 and held["head"]["seq"] == len(records)
    finally:
        authority.stop()


def test_upload_documents_are_checked_field_by_field():
    doc = upload.build("TST-00000001", b"\x01", [(1, b"\x02" * 70, None), (2, b"\x03" * 70, b"\x04")])
    assert upload.parse(doc, "TST-00000001")[1][1] == (2, b"\x03" * 70, b"\x04")
    cases = [({"format": "x"}, "format"), ({"device_id": "TST-00000002"}, "device_id"), ({"extra": 1}, "extra"),
             ({"records": []}, "records"), ({"records": [{"seq": 0, "record": "00"}]}, "records[0].seq"),
             ({"records": [{"seq": 1, "record": "00"}, {"seq": 3, "record": "00"}]}, "records[1].seq"),
             ({"records": [{"seq": 1, "record": "0"}]}, "records[0].record"),
             ({"records": [{"seq": 1, "record": "00", "canonical": 5}]}, "records[0].canonical"),
             ({"records": [{"seq": True, "record": "00"}]}, "records[0].seq"),
             ({"certificate": "xy"}, "certificate")]
    for change, field in cases:
        bad = dict(doc, **change)
        with pytest.raises(UploadRefused) as caught:
            upload.parse(bad, "TST-00000001")
        assert caught.value.field == field, (change, caught.value.detail)


def test_sync_url_rules():
    from hostd.daemon.sync import target
    assert target("http://127.0.0.1:9/")[0] == "http://127.0.0.1:9"
    assert target("http://localhost:9")[1] is None
    assert target("https://authority.example/fiscal")[1] is not None
    for url, field in (("http://authority.example", "--sync-url"), ("ftp://127.0.0.1", "--sync-url"),
                       ("http://127.0.0.1/?x=1", "--sync-url"), ("nonsense", "--sync-url")):
        with pytest.raises(ConfigError) as caught:
            target(url)
        assert caught.value.field == field
    with pytest.raises(ConfigError) as caught:
        target("http://127.0.0.1:9", "/etc/hostname")
    assert caught.value.field == "--sync-ca"
    proc = subprocess.run(FISCAL + ["daemon", "--device", "/nonexistent", "--socket", "/tmp/x-never.sock",
                                    "--sync-url", "http://authority.example"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "loopback" in proc.stderr, proc.stderr


def test_the_device_erases_only_what_the_authority_holds(tmp_path, auth_dir):
    authority = AuthorityServer(tmp_path, [auth_dir])   # not started yet: the outlet syncs to nobody
    outlet = Outlet(tmp_path, auth_dir, journal_kib=64)
    try:
        outlet.start_daemon(authority.url, "--archive-at", "10")
        items = [{"idempotency_key": "x-%d" % i, "invoice": json.loads(sample())} for i in range(80)]
        code, doc = _batch(outlet.pos, items)
        assert code == 200 and all(r["http_status"] == 200 for r in doc["payload"]["results"]), doc
        code, status = outlet.pos.get("/api/v1/outlets/local/status")
        assert status["payload"]["journal_fill"] >= 0.10, status
        assert status["payload"]["archived_seq"] == 0, status   # past the threshold, nothing erased
        assert status["payload"]["sync"]["acknowledged_seq"] == 0
        authority.start()
        outlet.wait_synced(80)
        items = [{"idempotency_key": "y-%d" % i, "invoice": json.loads(sample())} for i in range(40)]
        code, doc = _batch(outlet.pos, items)
        assert code == 200, doc
        code, status = outlet.pos.get("/api/v1/outlets/local/status")
        archived, acked = status["payload"]["archived_seq"], status["payload"]["sync"]["acknowledged_seq"]
        assert 0 < archived <= acked, status
        outlet.wait_synced(120)
    finally:
        outlet.close()
        authority.stop()


def _self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key (PEM files), as a head office's own CA would issue."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authority.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "authority.crt", tmp_path / "authority.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_over_https_refusals_fail_invoices_until_retried(tmp_path, auth_dir):
    """HTTPS with the authority's own certificate (--sync-ca); an authority that does not trust the
    device's certificate refuses it: after --sync-retries the invoices are failed with their events,
    later seals too; once it trusts the device, POST /api/v1/sync/retry brings them all to synced."""
    cert, key = _self_signed(tmp_path)
    stranger = str(tmp_path / "stranger-authority")
    _fiscal("authority", "init", "--dir", stranger)
    port = free_port()

    def authority(trusted):
        server = AuthorityServer(tmp_path, [trusted], port=port)
        server.url = "https://127.0.0.1:%d" % port
        args = FISCAL + ["authority", "serve", "--db", server.db, "--listen", "127.0.0.1:%d" % port, "--trust", trusted,
                         "--tls-cert", cert, "--tls-key", key]
        server.proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        context = ssl.create_default_context(cafile=cert)
        while True:
            try:
                with urllib.request.urlopen(server.url + "/health", timeout=5, context=context) as resp:
                    assert resp.status == 200
                    return server
            except OSError:
                assert server.proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)

    server = authority(stranger)
    outlet = Outlet(tmp_path, auth_dir)
    try:
        outlet.start_daemon(server.url, "--sync-ca", cert, "--sync-retries", "2")
        first = _seal_some(outlet.pos, 3, "f")
        deadline = time.monotonic() + 30
        while outlet.sync_state()["stopped_at_seq"] is None:
            assert time.monotonic() < deadline, outlet.sync_state()
            time.sleep(0.1)
        state = outlet.sync_state()
        assert "SYNC_CERTIFICATE" in state["last_error"] and state["failures"] == 2, state
        later = _seal_some(outlet.pos, 2, "g")
        deadline = time.monotonic() + 30
        while outlet.sync_state()["failed_invoices"] != 5:
            assert time.monotonic() < deadline, outlet.sync_state()
            time.sleep(0.1)
        code, listed = outlet.pos.get("/api/v1/invoices?status=failed&per_page=100")
        assert sorted(i["fiscal_number"] for i in listed["payload"]) == sorted(first + later)
        conn = sqlite3.connect(outlet.db)
        failed_events = conn.execute("SELECT COUNT(*) FROM events WHERE type='invoice.sync.failed'").fetchone()[0]
        conn.close()
        assert failed_events == 5

        server.stop()
        server = authority(auth_dir)
        code, data = outlet.pos.post("/api/v1/sync/retry", b"")
        assert code == 200 and json.loads(data)["payload"]["restarted_at_seq"] == 1, data
        outlet.wait_synced(5)
    finally:
        outlet.close()
        server.stop()
