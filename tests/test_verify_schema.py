"""The verifier enforces the record schema of PROTOCOL.md 7.1 and the journal rules of section 9.

Issue 10 tried fifteen kinds of signed-but-invalid records on the v1 verifier and all passed.
Here each kind is built as a real chain: every record signed with the device key over the
previous record's hash, so the signature, the chain and the counters all hold and only the rule
under test can catch it. Each kind must be refused with its own code and sentence.
"""

import pytest

from device.signer import Signer
from protocol import p256, profile_host, record, smt, verify
from protocol.errors import VerifyError
from tests.devkit import T0, fast_verifier, keystore

KEYS = keystore()
SIGNER = Signer(KEYS.secret())
KEY = SIGNER.public_key()
FAST = fast_verifier(KEY)
DEVICE = KEYS.device_id(KEY)


def rid(n):
    return record.request_id_for("2p:schema-%d" % n)


PROFILE = profile_host.load_bytes("seed-tg")
ROOT = smt.Tree()
ROOT.set(1, [["TG03", 100000, 16000]])     # record 9 credits record 4 (counter 1) in full


def invoice(seq, counter, n, groups=(("TG03", 160000, 100000, 16000),), itype="sale", t=None):
    groups = [list(g) for g in groups]
    fields = {record.K_REQUEST_ID: rid(n), record.K_TYPE: record.INVOICE, record.K_SEQ: seq, record.K_COUNTER: counter,
              record.K_TIME: T0 + seq if t is None else t, record.K_DEVICE: DEVICE,
              record.K_INVOICE_HASH: bytes([n]) * 32, record.K_INVOICE_TYPE: itype, record.K_GROUPS: groups,
              record.K_TOTAL: sum(g[2] + g[3] for g in groups), record.K_CURRENCY: "CDF"}
    if itype == "credit_note":
        fields[record.K_ORIGINAL], fields[record.K_CREDIT_ROOT] = 1, ROOT.root()
    return fields


def plain(rtype, seq, counter, t, **extra):
    fields = {record.K_TYPE: rtype, record.K_SEQ: seq, record.K_COUNTER: counter, record.K_TIME: t,
              record.K_DEVICE: DEVICE}
    for key, value in extra.items():
        fields[int(key[1:])] = value
    return fields


def journal():
    """Bodies of a valid journal: power-up, the profile event, clock, two invoices, clock change,
    power-up, clock, a credit note of the first invoice and a checkpoint (archived up to record 9,
    totals of the three invoices)."""
    return [plain(record.POWER_UP, 1, 0, 0, k15="fiscal-core"),
            plain(record.EVENT, 2, 0, 0, k20="profile", k21={1: profile_host.digest(PROFILE), 2: "seed-tg"}),
            plain(record.TIME, 3, 0, T0),
            invoice(4, 1, 1),
            invoice(5, 2, 2, (("TG02", 160000, 50000, 8000), ("TG04", 80000, 12345, 988))),
            plain(record.TIME, 6, 2, T0 + 100, k13=T0 + 7),
            plain(record.POWER_UP, 7, 2, T0 + 100, k15="fiscal-core"),
            plain(record.TIME, 8, 2, T0 + 200),
            invoice(9, 3, 3, itype="credit_note", t=T0 + 208),
            None]   # the checkpoint, filled in by sign()


def checkpoint(bodies, hashes, seq=10):
    totals = [["TG02", 50000, 8000], ["TG04", 12345, 988]]   # TG03: +100000/16000 then -100000/16000
    return plain(record.CHECKPOINT, seq, 3, T0 + 210, k5=hashes[seq - 2], k16=totals, k19=[9, hashes[8]],
                 k18=ROOT.root(), k32=profile_host.digest(PROFILE))


def sign(bodies, high_s_at=None, raw=None):
    """Signed records of ``bodies`` (a None entry becomes the checkpoint); ``raw`` maps an index to
    body bytes used as they are (for bytes a dict cannot express)."""
    prev, out, hashes = record.genesis(), [], []
    for i, fields in enumerate(bodies):
        if fields is None:
            fields = checkpoint(bodies, hashes)
        body = raw[i] if raw and i in raw else record.encode_body(fields)
        sig = SIGNER.sign(record.signing_input(prev, body))
        if i == high_s_at:
            sig = sig[:32] + (p256.N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
        out.append(body + sig)
        prev = record.record_hash(prev, body + sig)
        hashes.append(prev)
    return out


def refused(records):
    with pytest.raises(VerifyError) as info:
        verify.verify_records(records, KEY, FAST)
    return info.value


def test_the_base_journal_verifies_with_both_verifiers():
    records = sign(journal())
    summary = verify.verify_records(records, KEY, FAST)
    assert summary == verify.verify_records(records, KEY)
    assert summary["invoices"] == 3 and summary["checkpoints"] == [10] and summary["archived_seq"] == 9
    assert summary["credit_root"] == ROOT.root() and summary["profile_id"] == "seed-tg"
    assert verify.verify_records(records[9:], KEY, FAST)["first_seq"] == 10   # a checkpoint anchors alone


def _set(index, key, value):
    def mutate(bodies):
        bodies[index][key] = value
    return mutate


def _drop(index, key):
    def mutate(bodies):
        del bodies[index][key]
    return mutate


def _groups(index, groups):
    def mutate(bodies):
        bodies[index][record.K_GROUPS] = groups
        bodies[index][record.K_TOTAL] = sum(g[2] + g[3] for g in groups)
    return mutate


def _first_not_power_up(bodies):
    bodies[0] = plain(record.TIME, 1, 0, T0)


def _no_time_after_power_up(bodies):
    bodies[7] = invoice(8, 3, 9, t=T0 + 150)
    bodies[8] = invoice(9, 4, 3, itype="credit_note", t=T0 + 208)
    bodies[9] = None


def _big(bodies):
    bodies[0][record.K_FIRMWARE] = "x" * 2000


def _credit(index, **changes):
    def mutate(bodies):
        for key, value in changes.items():
            bodies[index][int(key[1:])] = value
    return mutate


def _two_profiles(bodies):
    other = profile_host.load_bytes("drc-dgi")
    bodies.insert(5, plain(record.EVENT, 6, 2, T0 + 5, k20="profile", k21={1: profile_host.digest(other), 2: "drc-dgi"}))
    for i in range(6, 9):
        bodies[i][record.K_SEQ] += 1
    bodies.pop()
    bodies.append(None)


KINDS = {
    "unknown key": (_set(3, 14, 1), "VERIFY_SCHEMA", "key 14 is not allowed in a INVOICE record"),
    "missing currency": (_drop(3, record.K_CURRENCY), "VERIFY_SCHEMA", "INVOICE record lacks key 12 (currency)"),
    "currency EUR": (_set(3, record.K_CURRENCY, "EUR"), "VERIFY_SCHEMA", "currency 'EUR' is not one of CDF, USD"),
    "31-byte invoice hash": (_set(3, record.K_INVOICE_HASH, b"\x01" * 31), "VERIFY_SCHEMA",
                             "key 7 (invoice_hash) must be 32 bytes, not 31"),
    "15-byte request id": (_set(3, record.K_REQUEST_ID, b"\x01" * 15), "VERIFY_SCHEMA",
                           "key 0 (request_id) must be 16 bytes, not 15"),
    "reused request id": (_set(4, record.K_REQUEST_ID, rid(1)), "VERIFY_REQUEST_ID",
                          "request id %s was already sealed by record 4" % record.hexs(rid(1))),
    "group TG99": (_groups(3, [["TG99", 160000, 100000, 16000]]), "VERIFY_AMOUNTS",
                   "tax group TG99 is not a group of profile seed-tg"),
    "wrong tax rounding": (_groups(3, [["TG03", 160000, 100001, 16001]]), "VERIFY_AMOUNTS",
                           "tax group TG03 tax 16001 is not round_half_up(100001 x 160000 / 10^6) = 16000"),
    "unsorted groups": (_groups(4, [["TG04", 80000, 12345, 988], ["TG02", 160000, 50000, 8000]]), "VERIFY_AMOUNTS",
                        "tax groups are not sorted by code (TG02 after TG04)"),
    "negative group": (_groups(3, [["TG03", 160000, -100000, -16000], ["TG04", 80000, 300000, 24000]]), "VERIFY_AMOUNTS",
                       "tax group TG03 has a negative rate, base or tax"),
    "empty groups": (_groups(3, []), "VERIFY_AMOUNTS", "invoice record has no tax groups"),
    "rate not in force": (_groups(3, [["TG03", 150000, 100000, 15000]]), "VERIFY_AMOUNTS",
                          "tax group TG03 rate 150000 ppm was not in force by 2026-02-17T04:00:04Z"),
    "group not for the type": (_set(3, record.K_INVOICE_TYPE, "export"), "VERIFY_AMOUNTS",
                               "tax group TG03 is not allowed for a export invoice by profile seed-tg"),
    "total not the sum": (_set(3, record.K_TOTAL, 116001), "VERIFY_AMOUNTS",
                          "total 116001 is not the sum of the groups' base and tax (116000)"),
    "first record not POWER_UP": (_first_not_power_up, "VERIFY_ORDER",
                                  "the journal starts with a time record; record 1 must be a POWER_UP"),
    "invoice without TIME after power-up": (_no_time_after_power_up, "VERIFY_ORDER",
                                            "invoice record after a power-up before any TIME record set the clock"),
    "previous_time on the first TIME": (_set(2, record.K_PREVIOUS_TIME, T0 - 5), "VERIFY_TIME",
                                        "the first TIME record after a power-up carries previous_time"),
    "previous_time missing later": (_drop(5, record.K_PREVIOUS_TIME), "VERIFY_TIME",
                                    "TIME record lacks previous_time although the clock was set since power-up"),
    "previous_time before the last TIME": (_set(5, record.K_PREVIOUS_TIME, T0 - 1), "VERIFY_TIME",
                                           "previous_time %d is before the previous TIME record's time %d"
                                           % (T0 - 1, T0)),
    "time goes back": (_set(4, record.K_TIME, T0 + 1), "VERIFY_TIME",
                       "time %d goes back before the previous record's %d" % (T0 + 1, T0 + 4)),
    "record over 1920 bytes": (_big, "VERIFY_RECORD", "record is 2091 bytes, more than 1920"),
    "boolean total": (_set(3, record.K_TOTAL, True), "VERIFY_SCHEMA",
                      "key 11 (total) is a boolean where an integer belongs"),
    "boolean type": (_set(3, record.K_TYPE, True), "VERIFY_SCHEMA", "record type True is not one of 1-6"),
    "text seq": (_set(3, record.K_SEQ, "3"), "VERIFY_SCHEMA", "key 2 (seq) must be a non-negative integer"),
    "unknown type": (_set(5, record.K_TYPE, 9), "VERIFY_SCHEMA", "record type 9 is not one of 1-6"),
    "credit without its original": (_drop(8, record.K_ORIGINAL), "VERIFY_SCHEMA",
                                    "key 17 (original) belongs in exactly the credit invoices"),
    "sale with a credit root": (_set(3, record.K_CREDIT_ROOT, b"\x00" * 32), "VERIFY_SCHEMA",
                                "key 18 (credit_root) belongs in exactly the credit invoices"),
    "credit of a later invoice": (_credit(8, k17=3), "VERIFY_CREDIT", "the credit names counter 3, not an earlier"),
    "credit beyond the original": (_groups(8, [["TG03", 160000, 100001, 16000]]), "VERIFY_CREDIT",
                                   "group TG03 is credited beyond the original's amount"),
    "credit root not the tree's": (_credit(8, k18=b"\x01" * 32), "VERIFY_CREDIT",
                                   "the credit root is not the root of the credits so far"),
    "credit of a group the original lacks": (_credit(8, k17=2), "VERIFY_CREDIT", "group TG03 is credited beyond"),
    "invoice without a profile": (lambda bodies: bodies.__setitem__(1, plain(record.EVENT, 2, 0, 0, k20="fill_80")),
                                  "VERIFY_PROFILE", "no known profile binds this invoice"),
    "profile changed after an invoice": (_two_profiles, "VERIFY_PROFILE", "the profile changes after the first invoice"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_signed_but_invalid_record_has_its_own_refusal(kind):
    mutate, name, text = KINDS[kind]
    bodies = journal()
    mutate(bodies)
    error = refused(sign(bodies))
    assert error.name == name, (error.name, error.detail)
    assert text in error.detail, error.detail
    assert error.detail.startswith("record %d (index %d): " % (error.index + 1, error.index))


def test_every_kind_has_a_distinct_sentence():
    texts = [text for _, _, text in KINDS.values()]
    assert len(set(texts)) == len(texts)


def test_high_s_is_refused_though_the_signature_verifies():
    records = sign(journal(), high_s_at=3)
    error = refused(records)
    assert (error.name, error.index) == ("VERIFY_SIGNATURE", 3) and "high s" in error.detail
    body, sig = records[3][:-64], records[3][-64:]
    prev = record.record_hash(record.record_hash(record.record_hash(record.genesis(), records[0]), records[1]),
                              records[2])
    assert p256.verify(KEY, record.hashlib.sha256(record.signing_input(prev, body)).digest(), sig)
    assert not FAST(record.signing_input(prev, body), sig)   # the host's fast check refuses it too


def test_non_canonical_body_is_refused_not_re_encoded():
    bodies = journal()
    body = record.encode_body(bodies[1])
    raw = body[:1] + b"\x18\x01" + body[2:]               # key 1 as a two-byte integer
    error = refused(sign(bodies, raw={1: raw}))
    assert (error.name, error.index) == ("VERIFY_RECORD", 1) and "non-shortest" in error.detail


def test_checkpoint_totals_and_archived_hash_are_checked():
    bodies = journal()
    records = sign(bodies)
    hashes = []
    prev = record.genesis()
    for rec in records:
        prev = record.record_hash(prev, rec)
        hashes.append(prev)
    for change, name, text in (
            ({record.K_TOTALS: [["TG02", 50000, 8000]]}, "VERIFY_TOTALS", "checkpoint totals"),
            ({record.K_ARCHIVED: [9, b"\x00" * 32]}, "VERIFY_ARCHIVED", "archived hash is not the hash of record 9"),
            ({record.K_ARCHIVED: [10, hashes[8]]}, "VERIFY_ARCHIVED", "archived seq 10 is not after"),
            ({record.K_PREV: hashes[7]}, "VERIFY_CHAIN", "checkpoint prev is not the hash of record 9"),
            ({record.K_CREDIT_ROOT: b"\x02" * 32}, "VERIFY_CREDIT", "credit root is not the newest credit's"),
            ({record.K_PROFILE: b"\x02" * 32}, "VERIFY_PROFILE", "profile hash is not the journaled one")):
        fields = checkpoint(bodies, hashes)
        fields.update(change)
        error = refused(sign(journal()[:9] + [fields]))
        assert (error.name, error.index) == (name, 9) and text in error.detail, error.detail


def test_archived_seq_must_grow():
    records = sign(journal())
    prev = record.record_hash(record.genesis(), records[0])
    for rec in records[1:]:
        prev = record.record_hash(prev, rec)
    again = plain(record.CHECKPOINT, 11, 3, T0 + 220, k5=prev, k16=[["TG02", 50000, 8000], ["TG04", 12345, 988]],
                  k19=[9, b"\x00" * 32], k18=ROOT.root(), k32=profile_host.digest(PROFILE))
    body = record.encode_body(again)
    rec = body + SIGNER.sign(record.signing_input(prev, body))
    error = refused(records + [rec])
    assert error.name == "VERIFY_ARCHIVED" and "not after the previous archived seq 9" in error.detail


def test_head_statement_verifies_and_names_its_fields():
    statement = record.head_statement(DEVICE, 9, 3, b"\x11" * 32, T0, b"nonce")
    sig = SIGNER.sign(record.HEAD_DOMAIN + statement)
    fields = verify.verify_head(statement, sig, KEY)
    assert fields[record.H_SEQ] == 9 and fields[record.H_CHALLENGE] == b"nonce" and fields[record.H_DEVICE] == DEVICE
    assert verify.verify_head(statement, sig, KEY, FAST) == fields
    for bad in (SIGNER.sign(statement), sig[:32] + (p256.N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")):
        with pytest.raises(VerifyError) as info:
            verify.verify_head(statement, bad, KEY)
        assert info.value.name == "VERIFY_HEAD"
    odd = record.encode_body({1: "FMDH2", 2: DEVICE, 3: True, 4: 3, 5: b"\x11" * 32, 6: T0, 7: b""})
    with pytest.raises(VerifyError) as info:
        verify.verify_head(odd, SIGNER.sign(record.HEAD_DOMAIN + odd), KEY)
    assert "key 3 has the wrong type" in info.value.detail
