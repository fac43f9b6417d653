"""The offline verifier catches tampering and names the record (protocol/verify.py)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import record, verify
from protocol.errors import VerifyError
from tests.devkit import T0, Bench, encode_invoice, fast_verifier, make_invoice, keystore
from device.signer import Signer


def _journal():
    bench = Bench()
    bench.ok("SET_TIME", time=T0)
    for i, itype in enumerate(["sale", "credit_note", "export", "sale"]):
        if itype == "credit_note":
            assert bench.credit(1, lines=((1000, 500, "TG02"),))[0] == "OK"
        else:
            groups = ("TG05", "TG05") if itype == "export" else ("TG02", "TG03")
            doc = make_invoice(lines=((1000 + i, 1000 * (i + 1), groups[0]), (500, 777, groups[1])), itype=itype)
            bench.ok("COMMIT", nonce=bench.prepare(encode_invoice(doc))[1]["nonce"])
        bench.clock.advance(5)
    bench.reboot()
    bench.ok("SET_TIME", time=T0 + 100)
    return bench


BENCH = _journal()
RECORDS = BENCH.records()
KEY = BENCH.public_key
FAST = fast_verifier(KEY)


def test_genuine_journal_verifies_with_both_verifiers():
    fast = verify.verify_records(RECORDS, KEY, FAST)
    pure = verify.verify_records(RECORDS, KEY)   # pure-Python P-256: what MicroPython would run
    assert fast == pure
    assert pure["invoices"] == 4 and pure["counter"] == 4 and pure["records"] == len(RECORDS)
    assert pure["totals"] and all(len(entry) == 3 for entry in pure["totals"])
    assert pure["last_hash"] == BENCH.core.last_hash and pure["first_seq"] == 1


def test_every_single_byte_flip_is_detected_and_located():
    for index, rec in enumerate(RECORDS):
        for pos in range(len(rec)):
            tampered = list(RECORDS)
            tampered[index] = rec[:pos] + bytes([rec[pos] ^ 0x01]) + rec[pos + 1:]
            with pytest.raises(VerifyError) as info:
                verify.verify_records(tampered, KEY, FAST)
            assert info.value.index == index, (index, pos, info.value)


@given(index=st.integers(0, len(RECORDS) - 1), data=st.data())
@settings(max_examples=200, deadline=None)
def test_any_byte_change_is_located(index, data):
    rec = RECORDS[index]
    pos = data.draw(st.integers(0, len(rec) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != rec[pos]))
    tampered = list(RECORDS)
    tampered[index] = rec[:pos] + bytes([value]) + rec[pos + 1:]
    with pytest.raises(VerifyError) as info:
        verify.verify_records(tampered, KEY, FAST)
    assert info.value.index == index


@pytest.mark.parametrize("index", range(1, len(RECORDS) - 1))
def test_removed_record_is_named(index):
    tampered = RECORDS[:index] + RECORDS[index + 1:]
    with pytest.raises(VerifyError) as info:
        verify.verify_records(tampered, KEY, FAST)
    assert info.value.name == "VERIFY_COUNTER" and info.value.index == index
    assert "missing" in info.value.detail


def test_removed_first_record_leaves_nothing_to_anchor_the_chain():
    with pytest.raises(VerifyError) as info:
        verify.verify_records(RECORDS[1:], KEY, FAST)
    assert info.value.name == "VERIFY_CHAIN" and info.value.index == 0
    assert "only seq 1, a CHECKPOINT or a CLOSURE anchors a chain" in info.value.detail


def test_a_segment_from_a_checkpoint_verifies_alone():
    BENCH.ok("SET_TIME", time=T0 + 200)
    answer = BENCH.archive_upto()
    live = BENCH.records()
    assert record.type_of(live[0]) == record.CHECKPOINT and answer["checkpoint_seq"] == len(RECORDS) + 3   # TIME, the Z, the checkpoint
    segment = verify.verify_records(live, KEY, FAST)
    whole = verify.verify_records(BENCH.history(), KEY, FAST)
    assert segment["first_seq"] == answer["checkpoint_seq"] and segment["last_hash"] == whole["last_hash"]
    assert segment["totals"] == whole["totals"] and whole["checkpoints"] == [answer["checkpoint_seq"]]


def test_reordered_and_duplicated_records_are_named():
    swapped = list(RECORDS)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    with pytest.raises(VerifyError) as info:
        verify.verify_records(swapped, KEY, FAST)
    assert info.value.index == 2
    with pytest.raises(VerifyError) as info:
        verify.verify_records(RECORDS[:3] + RECORDS[2:], KEY, FAST)
    assert info.value.index == 3


def test_wrong_key_fails_on_the_first_record():
    other = Signer(keystore("another device").secret()).public_key()
    with pytest.raises(VerifyError) as info:
        verify.verify_records(RECORDS, other)
    assert info.value.name == "VERIFY_SIGNATURE" and info.value.index == 0


def test_unusable_key_is_a_typed_error():
    with pytest.raises(VerifyError) as info:
        verify.verify_records(RECORDS, b"\x04" + b"\x01" * 64)
    assert info.value.name == "VERIFY_KEY"


def test_progress_is_reported():
    seen = []
    verify.verify_records(RECORDS, KEY, FAST, progress=seen.append)
    assert seen == list(range(1, len(RECORDS) + 1))
