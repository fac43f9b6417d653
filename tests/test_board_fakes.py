"""The board firmware (device/board.py) run in real MicroPython with fake ``machine``/``usb``.

CI has no board, so the board code runs in the WebAssembly MicroPython 1.27 with the fakes in
tests/upy_fakes/ (the way micropython-lib tests its own USB classes: inject a fake ``machine`` and
record). A scripted host speaks the real protocol to the firmware through the fake CDC interface,
whose ``write`` takes partial counts (0, 7, 64 bytes...) and whose ``readinto`` delivers 64-byte
packets and times out with None: the firmware must provision, refuse to seal without a tax profile,
install the seed-tg profile (PROFILE), set its clock, seal an invoice, replay a retransmission,
survive a modem probe (``AT``) on the line and a driver fault, arm credit evidence (EVIDENCE: one
pure-Python ECDSA verification on the board), seal a credit note and refuse one beyond the
original's balance, close the day (CLOSE Z), answer X, and write a checkpoint (ARCHIVED of the Z).
The test then checks, in CPython, what the firmware asked of USB (VID:PID, strings, serial,
``builtin_driver=True``), every flash call it made (page-bounded programs, no erase), the signature
with ``cryptography``, and the whole journal it read back with the reference verifier (profile,
credit root, the Z's figures and Merkle root recomputed from the records).
"""

import hashlib
import json
import os
import shutil

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from device.p256_table import TABLE
from hostd.books.keys import fast_verifier
from protocol import cbor, merkle, messages, profile_host, record, smt, usbids, verify
from tests.devkit import DAY, T0, encode_invoice, make_invoice
from tests.upy import heap_stats, run_upy

FAKES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upy_fakes")

SCRIPT = r'''
import json, os, sys
import machine
import usb.device
from usb.device import cdc as fake_cdc
from protocol import frames, messages
from device import board
from device.ports import SeededEntropy

INVOICE = bytes.fromhex("%(invoice)s")
PROFILE = bytes.fromhex("%(profile)s")      # protocol.profile_host.load_bytes("seed-tg")
CREDIT = bytes.fromhex("%(credit)s")        # a credit note for half of INVOICE
OVER = bytes.fromhex("%(over)s")            # a credit note for all of it: beyond what remains
DAY = "%(day)s"
T0 = %(t0)d
CERT = bytes.fromhex("%(cert)s")
BOGUS = bytes.fromhex("%(bogus)s")
os.mkdir("/fiscal")
with open("/fiscal/authority.bin", "wb") as fh:      # what `fiscal board deploy --authority` pins
    fh.write(bytes.fromhex("%(authority)s"))


class RecordingBdev:
    """Extended block protocol over RAM with NOR semantics; logs every call."""
    def __init__(self, blocks, block=4096):
        self.block = block
        self.mem = bytearray(b"\xff" * (blocks * block))
        self.log = []

    def readblocks(self, n, buf, off=0):
        at = n * self.block + off
        buf[:] = self.mem[at:at + len(buf)]

    def writeblocks(self, n, buf, off=None):
        at = n * self.block + (off or 0)
        self.log.append(["w", at, len(buf), off is None])
        for i in range(len(buf)):
            self.mem[at + i] &= buf[i]

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.mem) // self.block
        if op == 5:
            return self.block
        if op == 6:
            self.log.append(["e", arg * self.block, self.block, False])
            for i in range(arg * self.block, (arg + 1) * self.block):
                self.mem[i] = 0xFF
        return 0


class Host:
    def __init__(self):
        self.decoder = frames.FrameDecoder()
        self.seen = 0
        self.seq = 0
        self.waiting = None
        self.answers = []
        self.last_frame = None
        self.finished = False
        self.step = 0

    def answer(self, back=1):
        """Fields of the answer ``back`` places from the newest."""
        return messages.decode_response(bytes.fromhex(self.answers[-back]))[3]

    def request(self, name, **fields):
        self.seq += 1
        self.waiting = self.seq
        self.last_frame = frames.encode_frame(self.seq, messages.encode_request(name, **fields))
        return self.last_frame

    def next_chunk(self, sent):
        for kind, seq, item in self.decoder.feed(sent[self.seen:]):
            if kind == "frame" and seq == self.waiting:
                self.answers.append(bytes(item).hex())
                self.waiting = None
        self.seen = len(sent)
        if self.waiting is not None or self.finished:
            return None
        self.step += 1
        s = self.step
        if s == 1:
            return self.request("INFO")
        if s == 2:
            return self.request("SET_TIME", time=T0)      # refused: no key yet
        if s == 3:
            return self.request("PROVISION")
        if s == 4:
            return b"AT\r" + self.request("SET_TIME", time=T0)   # a modem probe first
        if s == 5:   # no tax profile yet: PROFILE_MISSING, nothing kept
            return self.request("PREPARE", total=len(INVOICE), offset=0, data=INVOICE, request_id=b"\x01" * 16)
        if s == 6:
            return self.request("PROFILE", data=PROFILE)
        if s == 7:
            return self.request("PREPARE", total=len(INVOICE), offset=0, data=INVOICE, request_id=b"\x01" * 16)
        if s == 8:
            return self.request("COMMIT", nonce=self.answer()["nonce"])
        if s == 9:   # the host lost the COMMIT answer: the identical frame again
            self.waiting = self.seq
            return self.last_frame
        if s == 10:  # the USB driver fails on the next read: the firmware must rebuild its core
            fake_cdc.RAISE_NEXT = True
            return None
        if s == 11:
            return self.request("PROVISION")
        if s == 12:
            return self.request("INFO")
        if s == 13:
            return self.request("CERTIFY", certificate=BOGUS)
        if s == 14:
            return self.request("CERTIFY", certificate=CERT)
        if s == 15:
            return self.request("INFO")
        if s == 16:  # the rebuilt core's clock is unset, as after a power-up
            return self.request("SET_TIME", time=T0 + 600)
        if s == 17:  # the sealed invoice (answer 8, COMMIT), nothing credited yet: the empty tree's proof
            sealed = messages.decode_response(bytes.fromhex(self.answers[7]))[3]["sealed"]
            return self.request("EVIDENCE", record=sealed[8] + sealed[9], prev=sealed[11], credited=[],
                                proof=b"\x00\x00\x00\x00")
        if s == 18:
            return self.request("SEAL", request_id=b"\x02" * 16, total=len(CREDIT), offset=0, data=CREDIT)
        if s == 19:
            return self.request("SEAL", request_id=b"\x03" * 16, total=len(OVER), offset=0, data=OVER)
        if s == 20:
            self.close_at = len(self.answers)
            return self.request("CLOSE", kind="Z", period=DAY, offset=0, records=[], last=True)
        if s == 21:
            return self.request("X")
        if s == 22:
            return self.request("READ_JOURNAL", first=1, count=64)
        if s == 23 and self.answer()["next"] <= self.answer()["last"]:
            self.step = 22   # read on up to the head
            return self.request("READ_JOURNAL", first=self.answer()["next"], count=64)
        if s == 23:   # archive up to the Z: a CHECKPOINT, nothing erased (all in the head sector)
            z = messages.decode_response(bytes.fromhex(self.answers[self.close_at]))[3]
            return self.request("ARCHIVED", seq=z["seq"], hash=z["hash"])
        if s == 24:
            return self.request("READ_JOURNAL", first=self.answer(2)["next"], count=64)
        if s == 25:
            return self.request("INFO")
        self.finished = True
        return None


host = Host()
fake_cdc.HOST = host
bdev = %(bdev)s
#upy:collect
fw = board.main(bdev, running=lambda: not host.finished, machine=machine, usb_device=usb.device,
           cdc_class=fake_cdc.CDCInterface, entropy=SeededEntropy("board"))   # WASM has no os.urandom
cdc = fake_cdc.INSTANCES[0]
itfs, kwargs = usb.device.INITS[0]
out = {"answers": host.answers, "init": kwargs, "n_itfs": len(itfs), "cdc": cdc.kwargs,
       "partial_writes": cdc.partial_writes, "idle_reads": cdc.idle_reads,
       "flash": getattr(bdev, "log", []), "machine": [list(c) for c in machine.CALLS],
       "files": sorted(os.listdir("/fiscal")), "restarts": fw.restarts,
       "modules": sorted([k for k in sys.modules if k.split(".")[0] in ("device", "protocol")])}
print(json.dumps(out))
#upy:collect
# What stays is the firmware (fw): drop what only this test harness kept (the scripted host, its
# class and answers, the invoices and profile it sent, every byte the fake CDC recorded), so the
# heap figure is the board's.
host = out = itfs = kwargs = Host = RecordingBdev = None
INVOICE = PROFILE = CREDIT = OVER = CERT = BOGUS = None
fake_cdc.HOST = None
cdc.sent = bytearray()
bdev = None
#upy:collect
'''


@pytest.fixture(scope="module")
def lib_dir(tmp_path_factory):
    """The fakes plus the table data file the board reads, laid out as the board's /lib."""
    lib = tmp_path_factory.mktemp("boardlib")
    shutil.copytree(FAKES, lib, dirs_exist_ok=True)
    os.makedirs(lib / "device", exist_ok=True)
    (lib / "device" / "p256_table.bin").write_bytes(TABLE)
    return str(lib)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A pinned authority, its certificate for the key the board will make (its entropy is seeded,
    so the key is known in advance), and one from a rogue authority for the same key."""
    from device.ports import SeededEntropy, device_id_for
    from device.signer import Signer, derive_secret
    from hostd.boards import authority

    pub = Signer(derive_secret(SeededEntropy("board").random(32))).public_key()
    good, rogue = (str(tmp_path_factory.mktemp(n)) for n in ("authority", "rogue"))
    authority.init(good)
    authority.init(rogue)
    device_id = device_id_for(pub, "FMD")
    return {"authority": authority.public_key(good).hex(), "cert": authority.issue(good, device_id, pub).hex(),
            "bogus": authority.issue(rogue, device_id, pub).hex(), "device_id": device_id}


SALE = ((2000, 50000, "TG03"),)       # base 100000, tax 16000
HALF = ((1000, 50000, "TG03"),)       # base 50000, tax 8000


def _script(certs, bdev="RecordingBdev(16)"):
    original = record.fiscal_number(certs["device_id"], 1)
    credit = make_invoice(HALF, "credit_note", credit=original, reason="returned")
    over = make_invoice(SALE, "credit_note", credit=original, reason="returned again")
    return SCRIPT % dict(certs, invoice=encode_invoice(make_invoice(SALE)).hex(), t0=T0, bdev=bdev, day=DAY,
                         profile=profile_host.load_bytes("seed-tg").hex(), credit=encode_invoice(credit).hex(),
                         over=encode_invoice(over).hex())


@pytest.fixture(scope="module")
def session(lib_dir, certs):
    return json.loads(run_upy(_script(certs), lib=lib_dir, timeout=300).strip().splitlines()[-1])


def _answers(session):
    return [messages.decode_response(bytes.fromhex(h)) for h in session["answers"]]


def test_usb_identity_keeps_the_repl_and_claims_our_ids(session):
    init = session["init"]
    assert session["n_itfs"] == 1
    assert init["builtin_driver"] is True                  # REPL CDC stays on interfaces 0-1
    assert (init["id_vendor"], init["id_product"]) == (usbids.VENDOR_ID, usbids.PRODUCT_ID)
    assert init["manufacturer_str"] == usbids.MANUFACTURER and init["product_str"] == usbids.PRODUCT
    assert init["serial_str"] == "E6614103E7452D2F"         # machine.unique_id() in hex
    assert session["cdc"]["timeout"] > 0 and session["cdc"]["rxbuf"] >= 64


ANSWERS = ["INFO", "SET_TIME", "PROVISION", "SET_TIME", "PREPARE", "PROFILE", "PREPARE", "COMMIT", "COMMIT",
           "PROVISION", "INFO", "CERTIFY", "CERTIFY", "INFO", "SET_TIME", "EVIDENCE", "SEAL", "SEAL", "CLOSE", "X"]


def _journal(session):
    """Every record the board's READ_JOURNAL answers returned, in order (1 up to the checkpoint)."""
    out = []
    for name, status, _, fields in _answers(session):
        if name == "READ_JOURNAL":
            assert status == 0
            out.extend(fields["records"])
    return out


def _body(rec):
    return record.decode(rec)[0]


def test_scripted_host_provisions_seals_and_gets_a_replay(session):
    a = _answers(session)
    names = [x[0] for x in a]
    assert names[:len(ANSWERS)] == ANSWERS
    assert names[len(ANSWERS):-3] == ["READ_JOURNAL"] * (len(names) - len(ANSWERS) - 3)
    assert names[-3:] == ["ARCHIVED", "READ_JOURNAL", "INFO"]
    assert a[0][3]["public_key"] == b"" and a[0][3]["device_id"] == ""
    assert a[1][1] == 0x70                                   # NOT_PROVISIONED before PROVISION
    prov = a[2][3]
    assert prov["created"] is True and len(prov["public_key"]) == 64
    assert a[9][3] == {"device_id": prov["device_id"], "public_key": prov["public_key"], "created": False}
    assert session["answers"][7] == session["answers"][8]   # retransmission replayed byte for byte
    sealed = a[7][3]["sealed"]
    assert a[8][3] == {"sealed": sealed, "replayed": False}  # the replayed frame, not a second COMMIT
    assert sealed[record.S_FISCAL_NUMBER] == prov["device_id"] + "-00000001"
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + prov["public_key"])
    sig = sealed[record.S_SIGNATURE]
    pub.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
               record.signing_input(sealed[record.S_PREVIOUS_HASH], sealed[record.S_RECORD]), ec.ECDSA(hashes.SHA256()))
    assert a[10][3]["counter"] == 1 and a[10][3]["certificate"] == b""
    # POWER_UP, TIME, profile EVENT, INVOICE, POWER_UP of the rebuilt core
    assert session["restarts"] == 1 and a[10][3]["seq"] == 5
    assert a[10][3]["clock"] is None         # rebuilt as at power-up: the host sets the time again


def test_board_refuses_to_seal_until_the_profile_is_installed(session):
    a = _answers(session)
    data = profile_host.load_bytes("seed-tg")
    assert a[4][1] == 0x80 and a[4][0] == "PREPARE"         # PROFILE_MISSING, no nonce
    assert a[5][3] == {"installed": True, "profile_id": "seed-tg", "profile_hash": hashlib.sha256(data).digest()}
    assert "nonce" in a[6][3] and a[6][3]["total"] == 116000
    info = a[10][3]                                          # after the core was rebuilt from flash
    assert (info["profile_id"], info["profile_hash"]) == ("seed-tg", hashlib.sha256(data).digest())
    assert "profile.cbor" in session["files"]
    event = _body(_journal(session)[2])
    assert event[record.K_EVENT] == "profile" and event[record.K_DETAIL] == {1: hashlib.sha256(data).digest(),
                                                                           2: "seed-tg"}


def test_board_checks_the_pinned_authority_and_keeps_the_certificate(session, certs):
    a = _answers(session)
    assert a[11][1] == 0x71 and "not by the pinned authority" in a[11][2]     # CERT_REFUSED: rogue
    assert a[12][3] == {"stored": True}
    assert a[13][3]["certificate"] == bytes.fromhex(certs["cert"])
    assert "cert.bin" in session["files"]
    assert "key.bin" in session["files"] and "anchor.bin" in session["files"]   # made by PROVISION
    event = _body(_journal(session)[5])                    # the certificate is journaled by its hash
    assert event[record.K_EVENT] == "certified"
    assert event[record.K_DETAIL][1] == hashlib.sha256(bytes.fromhex(certs["cert"])).digest()


def test_board_credits_only_against_armed_evidence_and_the_balance(session):
    a = _answers(session)
    assert a[14][3] == {"time": T0 + 600, "journaled": True}
    assert a[15][3] == {"original": 1, "remaining": [["TG03", 100000, 16000]], "armed": 1}
    sealed = a[16][3]["sealed"]
    assert a[16][3]["replayed"] is False and sealed[record.S_COUNTER] == 2
    body = cbor.decode(sealed[record.S_RECORD])
    tree = smt.Tree()
    tree.set(1, [["TG03", 50000, 8000]])                    # half of the original credited
    assert body[record.K_INVOICE_TYPE] == "credit_note" and body[record.K_ORIGINAL] == 1
    assert body[record.K_CREDIT_ROOT] == tree.root() != smt.empty_root()
    # the whole original again: 100000 + 16000 exceeds the 50000 + 8000 that remain
    assert a[17][1] == 0x97 and "exceeds" in a[17][2]       # CREDIT_EXCEEDS, nothing sealed


def test_board_closes_the_day_with_figures_and_root_from_its_records(session):
    a = _answers(session)
    journal = _journal(session)
    close = a[18][3]
    assert close["seq"] == 9 and close["received"] == 0 and journal[8] == close["record"]
    hashes, prev = [], record.genesis()
    for rec in journal:
        prev = record.record_hash(prev, rec)
        hashes.append(prev)
    assert close["hash"] == hashes[8]
    z = _body(close["record"])
    assert (z[record.K_TYPE], z[record.K_KIND], z[record.K_PERIOD]) == (record.CLOSURE, "Z", DAY)
    assert z[record.K_RANGE] == [1, 8] and z[record.K_FISCAL] == [1, 2]
    assert z[record.K_COUNTS] == [["credit_note", 1], ["sale", 1]]
    # per currency: perpetual grand total (credits negative), the same with credits positive, groups
    assert z[record.K_FIGURES] == [["CDF", 116000 - 58000, 116000 + 58000, [["TG03", 100000, 16000, 50000, 8000]]]]
    assert z[record.K_MERKLE] == merkle.root(hashes[:8]) and z[record.K_CHAIN] == record.genesis()
    x = a[19][3]["figures"]                                  # X after the Z: nothing open
    assert x[record.K_KIND] == "X" and x[record.K_COUNTS] == [] and x[record.K_FISCAL] == [0, 0]
    assert x[record.K_FIGURES] == [["CDF", 58000, 174000, []]] and x[record.K_RANGE] == [10, 9]
    assert x[record.K_MERKLE] == merkle.empty()


def test_board_journal_verifies_with_profile_credit_and_closure_rules(session):
    a = _answers(session)
    journal = _journal(session)
    pub = a[2][3]["public_key"]
    assert a[-3][3] == {"checkpoint_seq": 10, "first_live": 10, "erased_sectors": 0}
    info = a[-1][3]
    assert (info["seq"], info["counter"], info["first_live"], info["archived_seq"]) == (10, 2, 10, 9)
    assert len(journal) == 10
    kinds = [_body(rec)[record.K_TYPE] for rec in journal]
    assert kinds == [record.POWER_UP, record.TIME, record.EVENT, record.INVOICE, record.POWER_UP, record.EVENT,
                     record.TIME, record.INVOICE, record.CLOSURE, record.CHECKPOINT]
    summary = verify.verify_records(journal, pub, fast_verifier(pub), profile=profile_host.load_bytes("seed-tg"))
    assert summary["last_hash"] == info["last_hash"] and summary["invoices"] == 2
    assert summary["closures"] == [9] and summary["checkpoints"] == [10] and summary["unchecked"] == []
    assert summary["profile_id"] == "seed-tg" and summary["credit_root"] == _body(journal[7])[record.K_CREDIT_ROOT]
    cp = _body(journal[9])
    z_hash = a[18][3]["hash"]
    assert cp[record.K_ARCHIVED] == [9, z_hash] and cp[record.K_CREDIT_ROOT] == summary["credit_root"]
    assert cp[record.K_CLOSED] == [["Z", 9, z_hash, DAY, z_hash, [["CDF", 58000, 174000]]]]
    assert cp[record.K_PROFILE] == info["profile_hash"]


def test_partial_writes_and_timeouts_were_exercised(session):
    assert session["partial_writes"] > 0 and session["idle_reads"] > 0


def test_flash_calls_follow_nor_rules(session):
    log = session["flash"]
    programs = [e for e in log if e[0] == "w"]
    assert programs, "the firmware never programmed the flash"
    assert not [e for e in log if e[0] == "e"], "erase on a fresh journal"
    for _, at, n, whole in programs:
        assert not whole, "writeblocks without offset erases: never on the journal path"
        assert at % 256 == 0 and n == 256, "program %d+%d is not one whole page (rp2.Flash needs that)" % (at, n)


def test_rtc_follows_the_host_time(session):
    # once per core, when its clock is first set: the first SET_TIME, then the rebuilt core's
    rtc = [c for c in session["machine"] if c[0] == "rtc.datetime"]
    assert [c[1][:3] for c in rtc] == [[2026, 2, 17], [2026, 2, 17]]
    assert [c[1][4:7] for c in rtc] == [[4, 0, 0], [4, 10, 0]]


HEAP = 200 * 1024


# What a deploy puts under /lib, lazily imported modules included (TRANSIENT below: imported when a
# request or the power-up needs them): the session above needs every one of them.
BOARD_MODULES = [("protocol", n) for n in (
    "__init__", "batch", "cbor", "cert", "closure", "errors", "frames", "invoice", "merkle", "messages", "p256",
    "profile_check", "record", "smt", "taxgroups", "timefmt", "usbids")] + [("device", n) for n in (
        "__init__", "archive", "batch", "block_flash", "board", "books", "closing", "core", "credits", "flash",
        "identity", "journal", "keystore", "link", "nonces", "p256_table", "ports", "profile", "readout", "recovery",
        "ring", "sealing", "signer", "status", "table_file", "usb_link")]


@pytest.fixture(scope="module")
def mpy_lib(lib_dir, tmp_path_factory):
    """What `fiscal board deploy` puts on a board: its mpy-cross output (hostd.boards.deploy, so the
    embedded file names are the manifest's, not this checkout's path), no sources, the table file."""
    from hostd.boards.deploy import compile_mpy

    lib = tmp_path_factory.mktemp("mpylib")
    shutil.copytree(lib_dir, lib, dirs_exist_ok=True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for pkg, name in BOARD_MODULES:
        os.makedirs(lib / pkg, exist_ok=True)
        (lib / pkg / (name + ".mpy")).write_bytes(compile_mpy("%s/%s.py" % (pkg, name), root))
    empty = tmp_path_factory.mktemp("no-sources")
    return str(lib), str(empty)


def test_board_modules_are_listed_once(mpy_lib):
    """The list above is the set the board imports, at boot and when a request or the power-up
    needs a module of TRANSIENT: it must not miss a module (checked in WASM), and it is what the
    manifest deploys."""
    lib, empty = mpy_lib
    out = run_upy("import sys\nfrom device import board, archive, batch, books, closing, credits, identity, profile, "
                  "readout, recovery, status\nfrom protocol import batch, cert, profile_check\n"
                  "print(sorted(k for k in sys.modules if k.split('.')[0] in ('protocol', 'device')))",
                  lib=lib, root=empty)
    imported = set(tuple((k.split(".") + ["__init__"])[:2]) for k in eval(out))
    assert imported - set(BOARD_MODULES) == set(), "board imports modules missing from BOARD_MODULES"
    from hostd.boards.manifest import load_manifest
    deployed = set(tuple(src[:-3].split("/")) for src, dest in load_manifest()["files"] if dest.startswith("lib/"))
    assert deployed == set(BOARD_MODULES), "BOARD_MODULES and board/manifest.json differ"


# What the board core imports only while a request (or its power-up) needs it, and then drops
# (device/core.py ``unload``): after the session none of them is loaded, and everything else is.
TRANSIENT = [("protocol", n) for n in ("batch", "cert", "closure", "merkle", "profile_check", "smt")] + \
            [("device", n) for n in ("archive", "batch", "books", "closing", "credits", "identity", "profile",
                                     "readout", "recovery", "status")]


def test_board_keeps_only_what_every_request_needs(session):
    loaded = set(tuple((k.split(".") + ["__init__"])[:2]) for k in session["modules"])
    assert loaded & set(TRANSIENT) == set(), "modules a request imported stayed loaded"
    # every other board module stays (the signer's table is read from p256_table.bin, not imported)
    assert loaded == set(BOARD_MODULES) - set(TRANSIENT) - {("device", "p256_table")}
    assert session["restarts"] == 1     # the driver fault only: nothing dropped was needed later


def test_board_leaves_half_of_a_200k_heap_free(mpy_lib, certs):
    """Issue 4 (and issue 10): at least 100 KB free of a 200 KB heap, with the stock-firmware
    journal file.

    Modules are the .mpy files a deploy copies (bytecode still lives in RAM; frozen firmware
    would keep it in flash). live[0]: after imports, fakes and the harness's definitions; last:
    after the whole session above (boot, provisioning, the profile, a sealed invoice, a replay, a
    core rebuilt after a driver fault, a stored certificate, EVIDENCE, a credit note, CLOSE Z, X,
    READ_JOURNAL and ARCHIVED; the modules a request imports are dropped after it, see
    test_board_keeps_only_what_every_request_needs, but the names they interned stay), with what only
    the harness kept (the scripted host, its class, answers and invoices, the bytes the fake CDC
    kept) dropped and garbage collected. The figure goes to the README ("Measurements") and
    docs/BOARDS.md.
    """
    lib, empty = mpy_lib
    stats = heap_stats(_script(certs, '"file"'), heap=HEAP, lib=lib, root=empty, timeout=300)
    live_after = stats["live"][-1]
    print("\nboard heap: live after imports %d, after the session %d, free %d of %d"
          % (stats["live"][0], live_after, HEAP - live_after, HEAP))
    assert HEAP - live_after >= 100 * 1024, stats
