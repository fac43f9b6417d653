"""SEAL, request ids, HEAD, ARCHIVED and the fill level on the real core (PROTOCOL.md 4.6-4.17).

The state machine (tests/test_core_machine.py) drives these at random; here each documented rule
is pinned by one test that names it.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.ring import stored_size
from protocol import cbor, messages, profile_host, record, taxgroups, verify
from tests.devkit import T0, Bench, encode_invoice, make_invoice

GROUPS = profile_host.default()["groups"]

INVOICE = encode_invoice(make_invoice())


@pytest.fixture
def bench():
    b = Bench()
    b.ok("SET_TIME", time=T0)
    return b


groups14 = st.lists(st.tuples(st.integers(1, 10 ** 6), st.integers(0, 10 ** 9),
                              st.sampled_from(taxgroups.codes(GROUPS))), min_size=1, max_size=30)


@given(lines=groups14, wide=st.integers(0, 2 ** 32 - 1), credit=st.booleans())
@settings(max_examples=60, deadline=None)
def test_the_size_bound_covers_the_record_whatever_seq_and_time(lines, wide, credit):
    """The bound PREPARE and SEAL count holds for any seq, counter and time, credit keys included
    (a credit's original counter below its own counter, a 32-byte root)."""
    bench = BENCH
    doc = make_invoice(lines)
    canonical = encode_invoice(doc)
    rid = bench.request_id()
    summary = __import__("protocol.invoice", fromlist=["decode"]).decode(canonical)[1]
    summary["window"] = [10 ** 9, 10 ** 9]
    digest = record.hashlib.sha256(canonical).digest()
    extra = [max(0, wide - 1), b"\xff" * 32] if credit else None
    bench.core._credit = lambda summary: extra
    size = bench.core._admit(rid, digest, summary)[1]
    fields = bench.core._invoice_fields(rid, digest, summary, extra)
    fields.update({record.K_TYPE: 1, record.K_SEQ: wide, record.K_COUNTER: wide, record.K_TIME: wide,
                   record.K_DEVICE: bench.core.device_id})
    assert stored_size(len(record.encode_body(fields)) + 64) <= size


BENCH = Bench(flash_size=1024 * 1024)
BENCH.ok("SET_TIME", time=T0)


def test_seal_in_chunks_and_in_one_frame_dedupe_alike(bench):
    big = encode_invoice(make_invoice(lines=[(1000, 100 + i, "TG02") for i in range(60)]))
    assert len(big) > 2000
    rid = bench.request_id()
    offset, answer = 0, None
    while offset < len(big):
        answer = bench.ok("SEAL", request_id=rid, total=len(big), offset=offset, data=big[offset:offset + 1500])
        offset += 1500
    assert answer["replayed"] is False and answer["received"] == len(big)
    assert bench.ok("SEAL", request_id=rid, total=len(big), offset=0, data=big[:1500]) == {"received": 1500}
    again = bench.ok("SEAL", request_id=rid, total=len(big), offset=1500, data=big[1500:])
    assert again == dict(answer, replayed=True)
    assert bench.call("SEAL", request_id=rid, total=len(big), offset=1500, data=big[1500:])[0] == "CHUNK_SEQUENCE"
    assert bench.call("PREPARE", request_id=rid, total=len(big), offset=1500, data=big[1500:])[0] == "CHUNK_SEQUENCE"


def test_request_id_rules_of_prepare_and_seal(bench):
    rid = bench.request_id()
    first = bench.ok("PREPARE", request_id=rid, total=len(INVOICE), offset=0, data=INVOICE)
    assert bench.ok("PREPARE", request_id=rid, total=len(INVOICE), offset=0, data=INVOICE) == first
    other = encode_invoice(make_invoice(itype="advance"))
    before = bench.flash.image()
    assert bench.call("PREPARE", request_id=rid, total=len(other), offset=0, data=other)[0] == "REQUEST_ID_REUSED"
    assert bench.call("SEAL", request_id=rid, total=len(other), offset=0, data=other)[0] == "REQUEST_ID_REUSED"
    assert bench.flash.image() == before
    assert bench.ok("STATUS", request_id=rid) == {"state": messages.PREPARED, "nonce": first["nonce"],
                                                 "expires": first["expires"]}
    sealed = bench.ok("SEAL", request_id=rid, total=len(INVOICE), offset=0, data=INVOICE)   # consumes the nonce
    assert sealed["replayed"] is False and not bench.core.nonces.pending
    assert bench.ok("COMMIT", nonce=first["nonce"]) == {"sealed": sealed["sealed"], "replayed": True}
    assert bench.ok("PREPARE", request_id=rid, total=len(INVOICE), offset=0, data=INVOICE) == \
        {"received": len(INVOICE), "sealed": sealed["sealed"], "replayed": True}
    assert bench.call("ABORT", nonce=first["nonce"])[0] == "NONCE_COMMITTED"
    for fields in ({}, {"nonce": first["nonce"], "request_id": rid}, {"request_id": rid[:15]}):
        assert bench.call("STATUS", **fields)[0] == "MESSAGE_FIELD"
    assert bench.call("SEAL", request_id=b"\x01" * 15, total=len(INVOICE), offset=0, data=INVOICE)[0] == "MESSAGE_FIELD"


def test_a_replay_needs_no_clock_and_survives_a_power_cut(bench):
    rid = bench.request_id()
    sealed = bench.seal(INVOICE, rid)[1]["sealed"]
    bench.reboot()                                      # clock unset, nonce ring gone
    assert bench.seal(INVOICE, rid)[1] == {"received": len(INVOICE), "sealed": sealed, "replayed": True}
    assert bench.seal(INVOICE)[0] == "CLOCK_UNSET"
    assert bench.core.totals is None                    # running totals are not summed at power-up


def test_committed_nonces_are_remembered_in_a_ring_of_32(bench):
    nonces = []
    for _ in range(33):
        nonce = bench.prepare(INVOICE)[1]["nonce"]
        bench.ok("COMMIT", nonce=nonce)
        nonces.append(nonce)
    assert bench.ok("STATUS", nonce=nonces[0]) == {"state": messages.UNKNOWN}
    assert bench.call("COMMIT", nonce=nonces[0])[0] == "NONCE_UNKNOWN"
    assert bench.ok("STATUS", nonce=nonces[1])["state"] == messages.COMMITTED


def test_a_rate_not_in_force_by_the_device_time_is_refused():
    profile = profile_host.load("seed-tg")
    profile["groups"].append(["TG02", "Standard VAT \u2014 Goods", 180000, "2026-03-01T00:00:00Z"])
    profile["window"] = [172800, 20 * 86400]
    bench = Bench(profile=profile_host.encode(profile))
    bench.ok("SET_TIME", time=T0)                       # 2026-02-17: the new rate is not in force yet
    doc = make_invoice(lines=((1000, 1000, "TG02"),), timestamp="2026-03-02T00:00:00Z")
    doc[9][0][3] = 180000
    doc[9][0][5] = 180
    doc[10][2], doc[10][3], doc[11][0][2] = 180, 1180, 1180
    status, detail = bench.seal(encode_invoice(doc))
    assert status == "TAX_RATE_MISMATCH" and "not in force at 2026-02-17T04:00:00Z" in detail


def test_head_is_signed_over_the_challenge_and_works_on_a_full_device(bench):
    bench.seal(INVOICE)
    head = bench.ok("HEAD", challenge=b"\x00" * 64)
    fields = verify.verify_head(head["statement"], head["signature"], bench.public_key)
    assert (fields[record.H_SEQ], fields[record.H_COUNTER], fields[record.H_HASH]) == \
        (bench.core.seq, 1, bench.core.last_hash)
    assert fields[record.H_TIME] == T0 and fields[record.H_DEVICE] == bench.core.device_id
    assert bench.call("HEAD", challenge=b"\x00" * 65)[0] == "MESSAGE_FIELD"
    bench.reboot()
    assert verify.verify_head(*[bench.ok("HEAD", challenge=b"")[k] for k in ("statement", "signature")],
                              public_key=bench.public_key)[record.H_TIME] == T0   # clock unset: last time


def test_archived_refusals_change_nothing():
    bench = Bench(flash_size=4 * 4096)
    bench.ok("SET_TIME", time=T0)
    while bench.seal(INVOICE)[0] == "OK":
        pass
    j = bench.core.journal
    assert bench.call("ARCHIVED", seq=3, hash=j.head_hash)[0] == "ARCHIVE_OPEN_PERIOD"
    assert bench.close_z(bench.z_period())[0] == "OK"
    image = bench.flash.image()
    assert bench.call("ARCHIVED", seq=j.last_seq + 1, hash=j.head_hash)[0] == "ARCHIVE_RANGE"
    assert bench.call("ARCHIVED", seq=0, hash=j.head_hash)[0] == "ARCHIVE_RANGE"
    assert bench.call("ARCHIVED", seq=3, hash=j.head_hash)[0] == "ARCHIVE_HASH_MISMATCH"
    assert bench.call("ARCHIVED", seq=3, hash=b"\x00" * 31)[0] == "MESSAGE_FIELD"
    assert bench.flash.image() == image
    answer = bench.archive_upto(3)                 # archives part of the oldest sector: frees nothing
    assert answer == {"checkpoint_seq": j.last_seq, "first_live": 4, "erased_sectors": 0}
    status, detail = bench.call("READ_JOURNAL", first=3, count=1)
    assert status == "RANGE_INVALID" and "first_live is 4" in detail
    assert bench.ok("READ_JOURNAL", first=4, count=1)["first_live"] == 4
    while j.erased_count() or j.first_live >= j.run[0][2]:   # checkpoints take the sectors invoices may not
        bench.archive_upto(j.first_live)
    status, detail = bench.archive_call(j.first_live)          # would free nothing, and nothing is erased
    assert status == "JOURNAL_FULL" and "archive at least up to record %d" % j.run[0][2] in detail
    assert bench.archive_upto()["erased_sectors"] >= 2
    assert bench.verify()["counter"] == bench.core.counter


def test_fill_events_once_per_crossing():
    bench = Bench(flash_size=12 * 4096)
    bench.ok("SET_TIME", time=T0)
    while bench.seal(INVOICE)[0] == "OK":
        pass
    events = [cbor.decode(r[:-64])[record.K_EVENT] for r in bench.records() if record.type_of(r) == record.EVENT]
    assert events == ["profile", "fill_80", "fill_90", "fill_95"]   # the profile event: provisioning's
    assert bench.ok("INFO")["fill_ppm"] > 990000
    bench.archive_upto()
    assert bench.ok("INFO")["fill_ppm"] < 200000
    while bench.seal(INVOICE)[0] == "OK":
        pass
    events = [cbor.decode(r[:-64])[record.K_EVENT] for r in bench.history() if record.type_of(r) == record.EVENT]
    assert events == ["profile"] + ["fill_80", "fill_90", "fill_95"] * 2
    assert bench.verify()["invoices"] == bench.core.counter


def test_a_reclaimed_journal_still_belongs_to_its_key():
    bench = Bench(flash_size=8 * 4096)
    bench.ok("SET_TIME", time=T0)
    for _ in range(60):
        assert bench.seal(INVOICE)[0] == "OK"
    bench.archive_upto()
    assert bench.core.journal.first_seq() > 1          # record 1 is erased
    bench.reboot()
    assert bench.core.fault == "" and bench.ok("INFO")["first_live"] == bench.core.journal.archived[0] + 1
    bench.ok("SET_TIME", time=T0 + 1)
    assert bench.seal(INVOICE)[1]["sealed"][record.S_COUNTER] == 61


def test_one_receipt_verifies_alone_with_its_previous_hash(bench):
    """hostd/books/envelope.py carries previous_hash: record, signature, prev and the key suffice."""
    from hostd.books import envelope
    from hostd.books.keys import fast_verifier

    bench.seal(INVOICE)
    payload = envelope.sealed_payload(bench.seal(INVOICE)[1]["sealed"])
    body, sig = bytes.fromhex(payload["signed_record"]), bytes.fromhex(payload["signature"])
    prev = bytes.fromhex(payload["previous_hash"])
    assert prev == bench.core.journal.chain(bench.core.seq - 1)[1]
    assert fast_verifier(bench.public_key)(record.signing_input(prev, body), sig)
    assert record.record_hash(prev, body + sig).hex() == payload["ledger_hash"] == payload["qr_payload"].split(";")[7]
    assert payload["qr_payload"].startswith("FMD2;")


def test_the_decoded_profile_is_kept_by_an_emulator_per_hash_and_by_a_board_per_message():
    """device/sealing.py ``_the_profile``: an emulator reads and decodes the profile once, a board
    (a core that unloads) once per message; a profile installed later is read again, never served
    from the map of the one before."""
    import sys

    narrow = profile_host.load("seed-tg")
    narrow["window"] = [60, 60]                            # other bytes, another hash
    bench = Bench(profile=None)
    reads = []
    stored = bench.keys.profile
    bench.keys.profile = lambda: reads.append(1) or stored()
    bench.ok("PROFILE", data=profile_host.load_bytes("seed-tg"))
    bench.ok("SET_TIME", time=T0)
    late = encode_invoice(make_invoice(timestamp="2026-02-17T03:30:00Z"))   # 30 minutes behind the clock
    reads.clear()
    nonce = bench.prepare(late)[1]["nonce"]               # seed-tg takes it; its map is read once
    assert len(reads) == 1
    bench.ok("ABORT", nonce=nonce)
    bench.ok("PROFILE", data=profile_host.encode(narrow))  # no invoice yet: it may change
    reads.clear()
    status, _ = bench.seal(late)                          # the new map decides, not the kept one
    assert status == "INVOICE_TIME_WINDOW" and len(reads) == 1
    for _ in range(3):
        assert bench.seal(encode_invoice(make_invoice()))[0] == "OK"
    assert len(reads) == 1                                # kept while the hash holds

    bench.core.resident = tuple(sys.modules)              # what Core(unload=True) keeps on a board
    bench.ok("INFO")                                      # a board drops the map after any message
    assert bench.core.profile_memo is None
    for _ in range(2):
        assert bench.seal(encode_invoice(make_invoice()))[0] == "OK"
    assert len(reads) == 3 and bench.core.profile_memo is None
