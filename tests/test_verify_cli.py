"""The audit export and ``fiscal verify`` (hostd/books/export.py, hostd/cli/verify.py).

A real journal from the core on the flash model is exported (format fiscal-journal-export/2,
PROTOCOL.md section 11), written to a file and checked with the command; each kind of tampering
must fail with exit 1 (README: "verification failed") and its own message naming the record.
"""

import json

import click
import click._termui_impl
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from device.signer import Signer
from hostd.books import export, keys
from hostd.cli import verify as verify_cmd
from hostd.errors import VerificationFailed
from hostd.cli.verify import verify
from protocol import p256, record
from tests.devkit import T0, Bench, digest, encode_invoice, keystore, make_invoice

FAILED = 1   # README exit codes: 1 verification failed
USAGE = 2


def _seal(bench, doc):
    bench.ok("COMMIT", nonce=bench.prepare(encode_invoice(doc))[1]["nonce"])


def _journal(seed=0, last=True):
    bench = Bench(seed=seed)
    bench.requests = 1000 * seed     # the fork's request ids differ, so its records do
    bench.ok("SET_TIME", time=T0)
    for i, itype in enumerate(["sale", "credit_note", "sale", "export", "sale"]):
        if itype == "credit_note":
            assert bench.credit(1, lines=((1000, 500, "TG02"),))[0] == "OK"
        else:
            groups = ("TG05", "TG05") if itype == "export" else ("TG02", "TG03")
            _seal(bench, make_invoice(lines=((1000 + i, 1000 * (i + 1), groups[0]), (500, 777, groups[1])),
                                      itype=itype))
        bench.clock.advance(5)
    bench.reboot()
    bench.ok("SET_TIME", time=T0 + 100)
    if last:
        _seal(bench, make_invoice())
    return bench


BENCH = _journal()
RECORDS = BENCH.records()          # 1 power-up, 2 profile, 3 time, 4-8 invoices, 9 power-up, 10 time, 11 invoice
INFO = BENCH.ok("INFO")
HEAD = BENCH.ok("HEAD", challenge=b"")
KEY = BENCH.public_key
DOC = export.build_export(RECORDS, INFO, HEAD, T0 + 3600)
OTHER_KEY = Signer(keystore("other").secret()).public_key()
# Same device, same key, other request ids: a second history of the journal, as a restored flash
# image would give. Records 1-2 are identical, 3 onward differ but all verify.
FORK_BENCH = _journal(seed=1)
FORK = FORK_BENCH.records()


def _write(tmp_path, doc, name="export.json"):
    path = tmp_path / name
    path.write_bytes(export.dump_export(doc) if isinstance(doc, dict) else doc)
    return str(path)


def _with_records(records, **changes):
    doc = dict(DOC, records=[r.hex() for r in records])
    doc.update(changes)
    return doc


def _run(*args):
    return CliRunner().invoke(verify, [str(a) for a in args])


def _flip(rec, pos):
    return rec[:pos] + bytes([rec[pos] ^ 0x01]) + rec[pos + 1:]


def _error_of(result):
    assert result.exit_code == FAILED, (result.exit_code, result.output)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    return result.stderr[len("error: "):].strip()


def test_journal_is_what_the_tests_assume():
    kinds = [record.decode(r)[0][record.K_TYPE] for r in RECORDS]
    assert kinds == [record.POWER_UP, record.EVENT, record.TIME] + [record.INVOICE] * 5 + [record.POWER_UP, record.TIME,
                                                                                         record.INVOICE]
    assert INFO["seq"] == 11 and INFO["counter"] == 6
    assert FORK[:3] == RECORDS[:3] and all(FORK[i] != RECORDS[i] for i in range(3, 11))
    fork = export.build_export(FORK, FORK_BENCH.ok("INFO"), FORK_BENCH.ok("HEAD", challenge=b""), T0)
    assert export.verify_export(fork)["last_hash"] == FORK_BENCH.core.last_hash.hex()


def test_genuine_export_verifies(tmp_path):
    result = _run(_write(tmp_path, DOC))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "export verified: 11 records, 6 invoices, fiscal counter 6" in out
    assert "device:    %s" % INFO["device_id"] in out
    assert "first:     2026-02-17T04:00:00Z" in out and "last:      2026-02-17T04:01:40Z" in out
    assert "records:   1 to 11\n" in out and "head:      signed by the device at 2026-02-17T04:01:40Z\n" in out
    assert INFO["last_hash"].hex() in out
    assert "the key in the export file" in out
    assert result.stderr == ""


def test_json_summary(tmp_path):
    result = _run(_write(tmp_path, DOC), "--json")
    assert result.exit_code == 0
    got = json.loads(result.stdout)
    assert got["status"] == "ok" and got["records"] == 11 and got["invoices"] == 6 and got["counter"] == 6
    assert got["last_hash"] == INFO["last_hash"].hex() and got["device_id"] == INFO["device_id"]
    assert got["key_source"] == "file" and got["checkpoints"] == [] and got["first_seq"] == 1
    assert got["exported_at"] == "2026-02-17T05:00:00Z" and got["challenge"] == ""


def test_export_round_trips_and_is_deterministic():
    data = export.dump_export(DOC)
    assert export.load_export(data) == DOC
    assert export.dump_export(json.loads(data)) == data
    assert b" " not in data and list(json.loads(data)) == sorted(json.loads(data))
    assert DOC["from_seq"] == 1 and DOC["checkpoints"] == [] and len(DOC["records"]) == len(RECORDS)
    assert bytes.fromhex(DOC["head"]["statement"]) == HEAD["statement"]


def _pem(key):
    x, y = p256.decode_point(key)
    pub = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


KEY_FILES = {
    "raw64": lambda k: k,
    "raw65": lambda k: b"\x04" + k,
    "hex64": lambda k: k.hex().encode() + b"\n",
    "hex65": lambda k: b"  04" + k.hex().upper().encode() + b"\r\n",
    "pem": _pem,
}


@pytest.mark.parametrize("kind", sorted(KEY_FILES))
def test_pubkey_file_variants(tmp_path, kind):
    keyfile = tmp_path / "device.key"
    keyfile.write_bytes(KEY_FILES[kind](KEY))
    assert keys.load_public_key(str(keyfile)) == KEY
    result = _run(_write(tmp_path, DOC), "--pubkey", keyfile, "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["key_source"] == "given" and got["public_key"] == KEY.hex()


@pytest.mark.parametrize("content", [b"", b"\x04" * 64 + b"\x05", b"zz" * 64, KEY.hex()[:-2].encode(),
                                     b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                                     bytes(64)])   # (0, 0) is not a point of the curve
def test_unusable_pubkey_file_is_a_usage_error(tmp_path, content):
    keyfile = tmp_path / "bad.key"
    keyfile.write_bytes(content)
    with pytest.raises(VerificationFailed):
        keys.load_public_key(str(keyfile))
    result = _run(_write(tmp_path, DOC), "--pubkey", keyfile)
    assert result.exit_code == USAGE and "--pubkey" in result.stderr


def test_pem_key_of_another_curve_is_refused(tmp_path):
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    keyfile = tmp_path / "p384.pem"
    keyfile.write_bytes(other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(VerificationFailed, match="not a P-256 public key"):
        keys.load_public_key(str(keyfile))


# -- tampering: one distinct sentence per kind, naming the record -------------------------------

def _body_flip_record4():
    rec = RECORDS[3]
    fields, body, _ = record.decode(rec)
    pos = body.index(fields[record.K_INVOICE_HASH]) + 7   # inside the invoice hash: CBOR stays valid
    return _with_records(RECORDS[:3] + [_flip(rec, pos)] + RECORDS[4:])


def _sig_flip_record4():
    rec = RECORDS[3]
    return _with_records(RECORDS[:3] + [_flip(rec, len(rec) - 10)] + RECORDS[4:])


def _high_s_record4():
    rec = RECORDS[3]
    s = int.from_bytes(rec[-32:], "big")
    return _with_records(RECORDS[:3] + [rec[:-32] + (p256.N - s).to_bytes(32, "big")] + RECORDS[4:])


def _other_key_file(tmp_path):
    keyfile = tmp_path / "other.key"
    keyfile.write_bytes(OTHER_KEY.hex().encode())
    return keyfile


ALTERED4 = ("record 4 was altered or does not chain to record 3 (its signature does not verify over the "
            "previous record's hash)")
TAMPERED = {
    "body byte": (_body_flip_record4, 4, ALTERED4, "VERIFY_SIGNATURE"),
    "signature byte": (_sig_flip_record4, 4, ALTERED4, "VERIFY_SIGNATURE"),
    "high s": (_high_s_record4, 4, "record 4 has a high-s signature: not the device's canonical signature",
               "VERIFY_SIGNATURE"),
    "removed in the middle": (lambda: _with_records(RECORDS[:4] + RECORDS[5:]), 5,
                              "record 5 is missing (the file goes on with record 6)", "VERIFY_COUNTER"),
    "removed at the end": (lambda: _with_records(RECORDS[:-1]), 10,
                           "the records end at record 10, the device-signed head is at record 11 "
                           "(records cut off the end)", "VERIFY_HEAD"),
    "swapped": (lambda: _with_records(RECORDS[:3] + [RECORDS[4], RECORDS[3]] + RECORDS[5:]), 4,
                "records out of order at 4: position 4 holds record 5, record 4 is at position 5", "VERIFY_COUNTER"),
    "duplicated": (lambda: _with_records(RECORDS[:4] + [RECORDS[3]] + RECORDS[4:]), 5,
                   "records out of order at 5: record 4 appears again (duplicated)", "VERIFY_COUNTER"),
    "removed first": (lambda: _with_records(RECORDS[1:], from_seq=2), 1,
                      "the export starts at record 2, which is neither record 1 nor a checkpoint", "VERIFY_CHAIN"),
    "spliced from another copy": (lambda: _with_records(RECORDS[:4] + FORK[4:]), 5,
                                  "record 5 was altered or does not chain to record 4 (its signature does not "
                                  "verify over the previous record's hash)", "VERIFY_SIGNATURE"),
    "a second record 5": (lambda: _with_records(RECORDS[:5] + [FORK[4]] + RECORDS[5:]), 6,
                          "record 6 was altered or comes from another copy of the journal (it reads as record 5 "
                          "and its signature does not verify over this file's chain)", "VERIFY_COUNTER"),
    "a second record 4": (lambda: _with_records(RECORDS[:4] + [FORK[3]] + RECORDS[4:]), 5,
                          "records out of order at 5: position 5 holds a second, different record 4 "
                          "(from another copy of the journal)", "VERIFY_COUNTER"),
    "not hex": (lambda: dict(DOC, records=DOC["records"][:3] + ["zz" + DOC["records"][3]] + DOC["records"][4:]), 4,
                "records[3] (record 4) is not hex text", "VERIFY_EXPORT"),
    "truncated record": (lambda: _with_records(RECORDS[:3] + [RECORDS[3][:40]] + RECORDS[4:]), 4,
                         "record 4 is damaged: it is too short", "VERIFY_RECORD"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERED))
def test_tampering_is_named(tmp_path, kind):
    make, number, message, reason = TAMPERED[kind]
    path = _write(tmp_path, make())
    assert _error_of(_run(path)) == message
    result = _run(path, "--json")
    assert result.exit_code == FAILED
    assert json.loads(result.stdout) == {"status": "error", "code": "VERIFICATION_FAILED", "detail": message,
                                         "reason": reason, "record": number}


def test_signature_and_sequence_kinds_have_distinct_messages():
    messages = set(m for _, _, m, _ in TAMPERED.values())
    # the previous hash is signed, not stored: an altered record and one from another chain read the same
    assert len(messages) == len(TAMPERED) - 1


def test_wrong_key_is_named(tmp_path):
    result = _run(_write(tmp_path, DOC), "--pubkey", _other_key_file(tmp_path))
    assert _error_of(result) == "the export's public key differs from the key given to check it"


def test_key_in_the_file_alone_must_verify_the_records(tmp_path):
    path = _write(tmp_path, dict(DOC, public_key=OTHER_KEY.hex()))
    assert _error_of(_run(path)) == ("signature of record 1 does not verify: wrong public key, or record 1 was "
                                     "altered")
    keyfile = tmp_path / "device.key"
    keyfile.write_bytes(KEY)
    assert _error_of(_run(path, "--pubkey", keyfile)) == "the export's public key differs from the key given to check it"


def _head_doc(**change):
    return dict(DOC, head=dict(DOC["head"], **change))


OLD_HEAD = export.build_export(RECORDS[:-1], INFO, _journal(last=False).ok("HEAD", challenge=b""), T0)["head"]


@pytest.mark.parametrize("doc, message", [
    (lambda: dict(DOC, head=export.build_export(RECORDS, INFO, BENCH.ok("HEAD", challenge=b"x"), T0)["head"]),
     None),
    (lambda: _head_doc(signature=_flip(HEAD["signature"], 3).hex()),
     "head: head signature does not verify with this public key"),
    (lambda: _head_doc(statement=_flip(HEAD["statement"], 30).hex()), "head: "),
    (lambda: _with_records(RECORDS[:-1], head=OLD_HEAD),
     None),
    (lambda: dict(DOC, head=FORK_DOC["head"]),
     "record 11 is not the record the device-signed head names (hash or fiscal counter differ)"),
    (lambda: dict(DOC, device_id="TST-00000000"), "the records are from device %s, the file says TST-00000000"
     % INFO["device_id"]),
    (lambda: _with_records([], from_seq=1), "the records end at record 0, the device-signed head is at record 11"),
    (lambda: dict(DOC, checkpoints=[3]), "checkpoints lists [3], the records hold checkpoints []"),
    (lambda: dict(DOC, from_seq=2), "from_seq is 2, the first record is 1"),
])
def test_head_and_trailer_mismatch_is_named(tmp_path, doc, message):
    result = _run(_write(tmp_path, doc()))
    if message is None:   # a head of the same journal: an older head over fewer records verifies too
        assert result.exit_code == 0, result.output
    else:
        assert message in _error_of(result)


FORK_DOC = export.build_export(FORK, FORK_BENCH.ok("INFO"), FORK_BENCH.ok("HEAD", challenge=b""), T0)


def test_an_older_head_over_all_records_is_refused(tmp_path):
    path = _write(tmp_path, dict(DOC, head=OLD_HEAD))
    assert _error_of(_run(path)) == ("the records end at record 11, the device-signed head is at record 10 "
                                     "(an older head)")


def test_challenge_binds_the_head_to_the_auditor(tmp_path):
    doc = export.build_export(RECORDS, INFO, BENCH.ok("HEAD", challenge=b"\x01\x02audit"), T0)
    path = _write(tmp_path, doc)
    result = _run(path, "--challenge", "0102" + b"audit".hex(), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["challenge"] == "0102" + b"audit".hex()
    assert _error_of(_run(path, "--challenge", "00")) == ("the head was signed over challenge %s, not 00"
                                                          % ("0102" + b"audit".hex()))
    assert _error_of(_run(_write(tmp_path, DOC, "plain.json"), "--challenge", "00")) == \
        "the head was signed over challenge (none), not 00"
    assert _run(path, "--challenge", "zz").exit_code == USAGE
    assert _run(path, "--challenge", "00" * 65).exit_code == USAGE


def test_a_certificate_naming_another_key_or_device_is_refused(tmp_path):
    from hostd.boards import authority

    ca = str(tmp_path / "ca")
    authority.init(ca)
    good = authority.issue(ca, INFO["device_id"], KEY)
    assert export.verify_export(dict(DOC, certificate=good.hex()), authority=authority.public_key(ca))["certificate"] \
        .startswith("verified: issued to %s" % INFO["device_id"])
    for bad, message in ((authority.issue(ca, INFO["device_id"], OTHER_KEY),
                          "the certificate is for another public key than the one the records verify with"),
                         (authority.issue(ca, "TST-00000000", KEY), "the certificate names device TST-00000000")):
        assert message in _error_of(_run(_write(tmp_path, dict(DOC, certificate=bad.hex()))))   # no --authority


@pytest.mark.parametrize("data, message", [
    (b"{not json", "export is not valid JSON: "),
    (b"\xff\xfe{}", "export is not UTF-8 text: "),
    (b"[1, 2]", "export is not a JSON object"),
    (b"[" * 100000, "export is not valid JSON: "),
    (b'{"format": "fiscal-journal-export/1"}', "format is 'fiscal-journal-export/1', expected"),
    (b'{"format": "fiscal-journal-export/1", "format": "fiscal-journal-export/1"}', "field 'format' appears twice"),
    (export.dump_export(dict(DOC, from_seq=True)), "from_seq must be a non-negative integer"),
    (export.dump_export(dict(DOC, head={"statement": "00"})), "head must be an object with exactly statement"),
    (export.dump_export(dict(DOC, public_key=KEY.hex()[2:])), "public_key must be 64 bytes, got 63"),
    (export.dump_export(dict(DOC, records="00")), "records must be a list"),
    (export.dump_export(dict(DOC, exported_at="2026-02-30T00:00:00Z")), "exported_at is not a real date"),
    (export.dump_export(dict(DOC, extra=1)), "export has an unknown field extra"),
    (export.dump_export({k: v for k, v in DOC.items() if k != "head"}), "export lacks the field head"),
    (export.dump_export(DOC).replace(b'"from_seq":1', b'"from_seq":NaN'), "NaN is not allowed"),
])
def test_malformed_file_is_named(tmp_path, data, message):
    path = _write(tmp_path, data)
    assert message in _error_of(_run(path))
    result = _run(path, "--json")
    got = json.loads(result.stdout)
    assert result.exit_code == FAILED and got["status"] == "error" and message in got["detail"]
    assert got["record"] is None


def test_fast_verifier_agrees_with_pure_python():
    check = keys.fast_verifier(KEY)
    prev = record.genesis()
    for rec in RECORDS[:3]:
        fields, body, sig = record.decode(rec)
        signed = record.signing_input(prev, body)
        high = sig[:32] + (p256.N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
        for s in (sig, high, _flip(sig, 5), _flip(sig, 40), bytes(64), sig[:32] + p256.N.to_bytes(32, "big"), sig[:63],
                  sig[:32] + b"\x00" + sig[32:]):   # 65 bytes holding the same r and s: still not 64
            assert check(signed, s) == (p256.is_low_s(s) and p256.verify(KEY, digest(signed), s))
        assert check(signed, sig) is True and check(_flip(signed, 3), sig) is False
        assert check(signed, high) is False and keys.fast_verifier(KEY, low_s=False)(signed, high) is True
        prev = record.record_hash(prev, rec)


@given(index=st.integers(0, len(RECORDS) - 1), data=st.data())
@settings(max_examples=150, deadline=None)
def test_any_changed_byte_names_its_record(index, data):
    rec = RECORDS[index]
    pos = data.draw(st.integers(0, len(rec) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != rec[pos]))
    tampered = RECORDS[:index] + [rec[:pos] + bytes([value]) + rec[pos + 1:]] + RECORDS[index + 1:]
    with pytest.raises(VerificationFailed) as info:
        export.verify_export(_with_records(tampered))
    assert info.value.index == index and ("record %d " % (index + 1)) in info.value.detail


@given(st.binary(max_size=300) | st.builds(lambda cut, junk: export.dump_export(DOC)[:cut] + junk,
                                          st.integers(0, 3000), st.binary(max_size=20)))
@settings(max_examples=300, deadline=None)
def test_loader_fails_only_with_verification_failed(data):
    try:
        export.verify_export(export.load_export(data))
    except VerificationFailed as exc:
        assert exc.detail


# -- large exports: the progress bar -------------------------------------------------------------

@pytest.fixture(scope="module")
def large_export(tmp_path_factory):
    bench = Bench(flash_size=1024 * 1024)
    bench.ok("SET_TIME", time=T0)
    canonical = encode_invoice(make_invoice())
    for _ in range(1197):     # with the power-up, profile and clock records: 1200
        bench.ok("COMMIT", nonce=bench.prepare(canonical)[1]["nonce"])
    records = bench.records()
    assert len(records) == 1200
    path = tmp_path_factory.mktemp("large") / "large.json"
    path.write_bytes(export.dump_export(export.build_export(records, bench.ok("INFO"), bench.ok("HEAD", challenge=b""),
                                                            T0 + 60)))
    return str(path)


def test_large_export_shows_progress_on_a_terminal(large_export, monkeypatch):
    monkeypatch.setattr(verify_cmd, "_stderr_is_tty", lambda: True)
    monkeypatch.setattr(click._termui_impl, "isatty", lambda stream: True)   # let click draw into the runner
    result = _run(large_export)
    assert result.exit_code == 0, result.output
    assert "export verified: 1200 records, 1197 invoices, fiscal counter 1197" in result.stdout
    assert "verifying" in result.stderr and "1200/1200" in result.stderr and "#" * 36 in result.stderr


def test_large_export_no_progress_off_a_terminal_or_with_json(large_export, monkeypatch):
    result = _run(large_export)
    assert result.exit_code == 0 and result.stderr == ""
    monkeypatch.setattr(verify_cmd, "_stderr_is_tty", lambda: True)
    monkeypatch.setattr(click._termui_impl, "isatty", lambda stream: True)
    result = _run(large_export, "--json")
    assert result.exit_code == 0 and result.stderr == "" and json.loads(result.stdout)["records"] == 1200


def test_small_export_no_progress_even_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(verify_cmd, "_stderr_is_tty", lambda: True)
    monkeypatch.setattr(click._termui_impl, "isatty", lambda stream: True)
    result = _run(_write(tmp_path, DOC))
    assert result.exit_code == 0 and result.stderr == ""


def test_command_registers_into_a_group(tmp_path):
    @click.group()
    def fiscal():
        pass
    fiscal.add_command(verify)
    result = CliRunner().invoke(fiscal, ["verify", _write(tmp_path, DOC)])
    assert result.exit_code == 0 and "export verified" in result.stdout
