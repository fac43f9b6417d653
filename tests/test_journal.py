"""Property tests of the flash journal on its own (device/journal.py, device/flash.py).

Records here are opaque but chain like real ones, so recovery's "does the next record follow the
last one" check sees the same structure as on a device.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.flash import Flash
from device.journal import Journal, MAX_RECORD
from protocol import cbor, record
from protocol.errors import JournalError, PowerCut


def make_records(sizes):
    """Chained record payloads (body || 64-byte fake signature) of roughly the given sizes."""
    out, prev = [], record.genesis()
    for i, size in enumerate(sizes):
        body = cbor.encode({record.K_TYPE: record.TIME, record.K_SEQ: i + 1, record.K_COUNTER: 0,
                            record.K_TIME: i, record.K_PREV: prev, record.K_DEVICE: "J", 14: b"\x5a" * size})
        sig = bytes([(i * 7 + j) & 0xFF for j in range(64)])
        out.append(body + sig)
        prev = record.record_hash(body, sig)
    return out


sizes = st.lists(st.integers(0, 700), min_size=1, max_size=12)


@given(sizes=sizes)
@settings(max_examples=60, deadline=None)
def test_appended_records_come_back_in_order_after_reload(sizes):
    flash = Flash(16 * 4096)
    journal = Journal(flash)
    recs = make_records(sizes)
    for payload in recs:
        journal.append(payload)
    again = Journal(Flash(flash.size, data=flash.image()))
    assert [p for _, p in again.records()] == recs
    assert again.count == len(recs) and again.tail == journal.tail and again.corrupt is None
    assert [p for _, p in again.records(len(recs))] == recs[-1:]


@given(sizes=sizes, cut=st.integers(0, 40), land=st.integers(0, 300), mask=st.sampled_from([None, 0x0F, 0xF0]))
@settings(max_examples=150, deadline=None)
def test_a_cut_anywhere_loses_at_most_the_record_being_written(sizes, cut, land, mask):
    flash = Flash(16 * 4096)
    journal = Journal(flash)
    recs = make_records(sizes + [300, 300])
    flash.cut_after, flash.cut_bytes, flash.cut_mask = cut, land, mask
    written = 0
    try:
        for payload in recs[:-1]:
            journal.append(payload)
            written += 1
    except PowerCut:
        pass
    flash.revive()
    again = Journal(flash)
    got = [p for _, p in again.records()]
    assert got in (recs[:written], recs[:written + 1])
    assert again.corrupt is None
    # The journal accepts the next record after the tear, and it is found on the next boot.
    again.append(recs[len(got)])
    final = Journal(Flash(flash.size, data=flash.image()))
    assert [p for _, p in final.records()] == recs[:len(got) + 1]


@given(sizes=st.lists(st.integers(0, 300), min_size=3, max_size=8), data=st.data())
@settings(max_examples=100, deadline=None)
def test_damage_in_the_middle_is_never_taken_for_a_torn_tail(sizes, data):
    flash = Flash(8 * 4096)
    journal = Journal(flash)
    recs = make_records(sizes)
    offsets = []
    for payload in recs:
        offsets.append(journal.tail)
        journal.append(payload)
    victim = data.draw(st.integers(0, len(recs) - 2))
    pos = offsets[victim] + data.draw(st.integers(0, len(recs[victim]) + 7))
    image = bytearray(flash.image())
    image[pos] ^= 1 << data.draw(st.integers(0, 7))
    again = Journal(Flash(flash.size, data=bytes(image)))
    got = [p for _, p in again.records()]
    assert got == recs[:victim]                  # nothing after the damage is trusted ...
    assert again.corrupt == offsets[victim]      # ... and the device knows it is damaged
    with pytest.raises(JournalError) as info:
        again.append(recs[victim])
    assert info.value.name == "JOURNAL_CORRUPT"


def test_find_walks_back_from_the_newest_record():
    flash = Flash(16 * 4096)
    journal = Journal(flash)
    recs = make_records([10] * 40)
    for payload in recs:
        journal.append(payload)
    seq, payload = journal.find(recs[3][-64:])
    assert (seq, payload) == (4, recs[3])
    assert journal.find(b"not in any record") is None


def test_oversize_record_and_full_partition_are_refused():
    journal = Journal(Flash(4096))
    with pytest.raises(JournalError) as info:
        journal.append(b"x" * (MAX_RECORD + 1))
    assert info.value.name == "STORAGE_FAILURE"
    recs = make_records([600] * 10)
    with pytest.raises(JournalError) as info:
        for payload in recs:
            journal.append(payload)
    assert info.value.name == "JOURNAL_FULL"
    assert Journal(Flash(4096, data=journal.flash.image())).count == journal.count


def test_flash_enforces_nor_rules():
    flash = Flash(8192)
    flash.program(0, b"\x0f")
    with pytest.raises(JournalError):
        flash.program(0, b"\xf0")          # would set bits: needs an erase
    with pytest.raises(JournalError):
        flash.program(250, b"\x00" * 10)   # crosses a page boundary
    flash.erase(0)
    flash.program(0, b"\xf0")
    assert flash.read(0, 2) == b"\xf0\xff"
