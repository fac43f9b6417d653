"""Signatures checked beside the walk (hostd/books/signatures.py): ``fiscal verify`` on two cores
checks a long export's signatures in a worker process while it walks the records, and must answer
exactly what the sequential walk answers: the same summary for a genuine export, the same refusal
(record, reason, sentence) for any tampered one.

The thresholds are lowered here so the 11-record journal of tests/test_verify_cli.py takes the
parallel path, in slices of a few records, with a real worker process.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostd.books import export, keys, signatures
from hostd.errors import VerificationFailed
from tests.test_verify_cli import DOC, KEY, RECORDS, _run, _with_records


@pytest.fixture
def small_slices(monkeypatch):
    monkeypatch.setattr(signatures, "PARALLEL_MIN", 0)
    monkeypatch.setattr(signatures, "FIRST_SLICE", 2)
    monkeypatch.setattr(signatures, "SLICE", 3)


def _outcome(doc, workers):
    try:
        return "ok", export.verify_export(doc, workers=workers)
    except VerificationFailed as exc:
        return "refused", (exc.index, exc.reason, exc.field, exc.detail)


def _pairs(count, bad=None):
    """(public key, [(message, low-s signature)]) of a fixed test key, the signature at ``bad``
    spoiled."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from protocol import p256

    key = ec.derive_private_key(7, ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    pairs = []
    for i in range(count):
        message = b"message %d" % i
        r, s = utils.decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        s = min(s, p256.N - s)   # low s, as the device signs
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if i == bad:
            sig = sig[:-1] + bytes([sig[-1] ^ 1])
        pairs.append((message, sig))
    return p256.encode_point(numbers.x, numbers.y), pairs


def test_the_worker_finds_the_first_bad_signature():
    public, pairs = _pairs(6, bad=4)
    assert signatures._first_bad(public, pairs) == 4
    assert signatures._first_bad(public, pairs[:4]) is None


@pytest.mark.parametrize("bad", [None, 0, 1, 5, 9])
def test_deferred_checks_agree_with_checking_in_line(small_slices, bad):
    public, pairs = _pairs(10, bad=bad)
    check = keys.fast_verifier(public)
    with signatures.Deferred(public) as deferred:
        assert all(deferred.check(m, s) for m, s in pairs)   # answers at once
        assert [upto for _, _, upto in deferred.slices] == [2, 5, 8]
        seen = []
        assert deferred.all_good(check, seen.append) is (bad is None)
    if bad is None:
        assert seen and seen[-1] == 10 and seen == sorted(seen)


def test_a_genuine_export_gives_the_same_summary_both_ways(small_slices):
    assert _outcome(DOC, 1) == _outcome(DOC, 0)
    assert _outcome(DOC, 1)[1]["records"] == len(RECORDS)


def test_the_cli_takes_the_parallel_path_and_reports_progress_to_the_end(small_slices, tmp_path, monkeypatch):
    calls = []
    real = signatures.Deferred

    class Counting(real):
        def check(self, message, signature):
            calls.append(1)
            return real.check(self, message, signature)
    monkeypatch.setattr(signatures, "Deferred", Counting)
    path = tmp_path / "export.json"
    path.write_bytes(export.dump_export(DOC))
    result = _run(path, "--pubkey", _key_file(tmp_path))
    assert result.exit_code == 0, result.output
    assert len(calls) == len(RECORDS)
    assert "export verified: %d records" % len(RECORDS) in result.stdout


def _key_file(tmp_path):
    path = tmp_path / "key.hex"
    path.write_text(KEY.hex())
    return str(path)


def test_no_worker_means_the_walk_in_line(small_slices, monkeypatch):
    class NoFork(signatures.Deferred):
        def __init__(self, public_key):
            raise OSError("no fork here")
    monkeypatch.setattr(signatures, "Deferred", NoFork)
    assert _outcome(DOC, 1) == _outcome(DOC, 0) and _outcome(DOC, 1)[0] == "ok"


@given(index=st.integers(0, len(RECORDS) - 1), data=st.data())
@settings(max_examples=40, deadline=None)
def test_any_changed_byte_is_refused_exactly_as_in_line(index, data):
    """The parallel path must name the same first bad record, with the same reason and words,
    whether the byte broke a signature, a field, or the chain."""
    saved = signatures.PARALLEL_MIN, signatures.FIRST_SLICE, signatures.SLICE
    signatures.PARALLEL_MIN, signatures.FIRST_SLICE, signatures.SLICE = 0, 2, 3   # not a fixture: hypothesis
    try:
        rec = RECORDS[index]
        pos = data.draw(st.integers(0, len(rec) - 1))
        value = data.draw(st.integers(0, 255).filter(lambda v: v != rec[pos]))
        doc = _with_records(RECORDS[:index] + [rec[:pos] + bytes([value]) + rec[pos + 1:]] + RECORDS[index + 1:])
        beside, in_line = _outcome(doc, 1), _outcome(doc, 0)
        assert in_line[0] == "refused" and beside == in_line
    finally:
        signatures.PARALLEL_MIN, signatures.FIRST_SLICE, signatures.SLICE = saved
