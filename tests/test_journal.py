"""Property tests of the flash journal on its own (device/journal.py, device/recovery.py,
device/ring.py, device/flash.py).

Records here carry fake signatures but real v2 bodies (seq, type, a request id for invoices), so
recovery's "does the next record follow" check and the request-id index see what they see on a
device. Checkpoints carry ``archived = [S, H]`` with H the journal's own hash of record S, as
ARCHIVED writes them.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.flash import Flash
from device.journal import Journal
from device.ring import MAX_RECORD, SPAN, stored_size
from protocol import cbor, record
from protocol.errors import JournalError, PowerCut

SECTOR = 4096


def body(seq, size=0, rtype=record.TIME, extra=None):
    fields = {record.K_TYPE: rtype, record.K_SEQ: seq, record.K_COUNTER: 0, record.K_TIME: seq,
              record.K_DEVICE: "J", 14: b"\x5a" * size}
    if rtype == record.INVOICE:
        fields[record.K_REQUEST_ID] = record.request_id_for("r%d" % seq)
    fields.update(extra or {})
    return cbor.encode(fields) + bytes([(seq * 7 + j) & 0xFF for j in range(64)])


def make_records(sizes, first=1):
    return [body(first + i, size, record.INVOICE if i % 2 else record.TIME) for i, size in enumerate(sizes)]


def checkpoint(journal, upto):
    """The CHECKPOINT ARCHIVED(upto) would append next (fake signature)."""
    seq = journal.last_seq + 1
    return body(seq, 0, record.CHECKPOINT, {record.K_PREV: journal.head_hash, record.K_TOTALS: [],
                                           record.K_ARCHIVED: [upto, journal.chain(upto)[1]]})


def reload(flash):
    return Journal(Flash(flash.size, data=flash.image()))


def live(journal):
    return [p for _, p in journal.records(journal.first_live)]


def chain_of(records, prev=None):
    prev = record.genesis() if prev is None else prev
    out = []
    for rec in records:
        prev = record.record_hash(prev, rec)
        out.append(prev)
    return out


sizes = st.lists(st.integers(0, 700), min_size=1, max_size=12)


@given(sizes=sizes)
@settings(max_examples=60, deadline=None)
def test_appended_records_come_back_in_order_after_reload(sizes):
    flash = Flash(16 * SECTOR)
    journal = Journal(flash)
    recs = make_records(sizes)
    for payload in recs:
        journal.append(payload, 1)
    again = reload(flash)
    assert [p for _, p in again.records()] == recs
    assert again.last_seq == len(recs) and again.tail == journal.tail and again.corrupt is None
    assert [p for _, p in again.records(len(recs))] == recs[-1:]
    assert again.head_hash == journal.head_hash == chain_of(recs)[-1]
    assert [again.chain(s)[1] for s in range(1, len(recs) + 1)] == chain_of(recs)


def test_records_never_span_a_sector_and_each_sector_starts_with_one():
    flash = Flash(8 * SECTOR)
    journal = Journal(flash)
    recs = make_records([900] * 12)
    for payload in recs:
        journal.append(payload, 0)
    assert len(journal.run) >= 3
    for entry in journal.run:
        assert journal.ring.parse(journal.ring.base(entry[0])) is not None
    per_sector = SECTOR // stored_size(len(recs[0]))
    assert [e[2] - e[1] + 1 for e in journal.run[:-1]] == [per_sector] * (len(journal.run) - 1)


@given(sizes=sizes, cut=st.integers(0, 40), land=st.integers(0, 300), mask=st.sampled_from([None, 0x0F, 0xF0]))
@settings(max_examples=150, deadline=None)
def test_a_cut_anywhere_loses_at_most_the_record_being_written(sizes, cut, land, mask):
    flash = Flash(16 * SECTOR)
    journal = Journal(flash)
    recs = make_records(sizes + [300, 300])
    flash.cut_after, flash.cut_bytes, flash.cut_mask = cut, land, mask
    written = 0
    try:
        for payload in recs[:-1]:
            journal.append(payload, 1)
            written += 1
    except PowerCut:
        pass
    flash.revive()
    again = Journal(flash)
    got = [p for _, p in again.records()]
    assert got in (recs[:written], recs[:written + 1])
    assert again.corrupt is None
    again.resume()
    # The journal accepts the next record after the tear, and it is found on the next boot.
    again.append(recs[len(got)], 1)
    final = reload(flash)
    assert [p for _, p in final.records()] == recs[:len(got) + 1]


@given(sizes=st.lists(st.integers(0, 300), min_size=3, max_size=8), data=st.data())
@settings(max_examples=100, deadline=None)
def test_damage_in_the_middle_is_never_taken_for_a_torn_tail(sizes, data):
    flash = Flash(8 * SECTOR)
    journal = Journal(flash)
    recs = make_records(sizes)
    offsets = []
    for payload in recs:
        offsets.append(journal.tail if journal.run and journal.head_room() >= stored_size(len(payload)) else None)
        journal.append(payload, 1)
        if offsets[-1] is None:
            offsets[-1] = journal.ring.base(journal.run[-1][0])
    victim = data.draw(st.integers(0, len(recs) - 2))
    pos = offsets[victim] + data.draw(st.integers(0, len(recs[victim]) + 7))
    image = bytearray(flash.image())
    image[pos] ^= 1 << data.draw(st.integers(0, 7))
    again = Journal(Flash(flash.size, data=bytes(image)))
    got = [p for _, p in again.records()]
    assert got == recs[:victim]                  # nothing after the damage is trusted ...
    assert again.corrupt is not None             # ... and the device knows it is damaged
    assert again.resume() == 0                   # nothing is erased on a damaged journal
    with pytest.raises(JournalError) as info:
        again.append(recs[victim], 1)
    assert info.value.name == "JOURNAL_CORRUPT"


def _filled(n_sectors=8, size=600, count=30):
    flash = Flash(n_sectors * SECTOR)
    journal = Journal(flash)
    recs = make_records([size] * count)
    for payload in recs:
        journal.append(payload, 0)
    return flash, journal, recs


def test_checkpoint_then_reclaim_erases_only_archived_sectors_and_wraps():
    flash, journal, recs = _filled(count=20)
    upto = journal.run[2][2]                     # the last record of the third sector
    journal.append(checkpoint(journal, upto), 0)
    assert journal.first_live == upto + 1 and journal.archived[0] == upto
    assert journal.reclaim(upto) == 3
    assert journal.run[0][1] == upto + 1
    again = reload(flash)
    assert again.first_live == upto + 1 and again.head_hash == journal.head_hash
    assert live(again) == recs[upto:] + [journal.last]
    # The ring wraps: new records go into the erased sectors after the partition end.
    more = make_records([600] * 25, first=journal.last_seq + 1)
    for payload in more:
        journal.append(payload, 0)
    assert journal.run[-1][0] < journal.run[0][0]
    again = reload(flash)
    assert live(again) == live(journal) and again.head_hash == journal.head_hash
    assert [again.chain(s)[1] for s in (again.first_live, again.last_seq)] == \
        [journal.chain(s)[1] for s in (journal.first_live, journal.last_seq)]


def test_archived_records_inside_a_live_sector_are_not_live():
    flash, journal, recs = _filled(count=20)
    upto = journal.run[1][1] + 1                 # inside the second sector
    journal.append(checkpoint(journal, upto), 0)
    assert journal.reclaim(upto) == 1
    again = reload(flash)
    assert again.first_live == upto + 1 and again.run[0][1] < upto
    assert live(again)[0] == recs[upto] and again.chain(upto + 1)[0] == chain_of(recs)[upto - 1]
    assert [p for _, p in again.records()][0] == recs[again.run[0][1] - 1]   # still on flash


@pytest.mark.parametrize("prefix,garbage", [(0, None), (0, 0x00), (1, None), (100, 0x5A), (2048, None),
                                            (4095, 0x00), (4096, None)])
def test_a_cut_erase_is_finished_at_power_up(prefix, garbage):
    flash, journal, recs = _filled(count=20)
    upto = journal.run[2][2]
    journal.append(checkpoint(journal, upto), 0)
    head = journal.head_hash
    flash.cut_erase_after = flash.erases + 1     # the second erase is cut
    flash.erase_cut_bytes, flash.erase_garbage = prefix, garbage
    with pytest.raises(PowerCut):
        journal.reclaim(upto)
    flash.revive()
    again = Journal(flash)
    assert again.corrupt is None and again.head_hash == head and again.first_live == upto + 1
    again.resume()
    assert again.run[0][1] == upto + 1 and again.garbage == []
    assert live(reload(flash)) == recs[upto:] + [journal.last]


def test_garbage_outside_the_gap_ends_or_middle_is_damage():
    flash, journal, recs = _filled(n_sectors=8, count=12)      # sectors 0-2 used, 3-7 erased
    flash.program(5 * SECTOR + 100, b"\x00")                   # a bit pattern in the middle of the gap
    assert reload(flash).corrupt == 5 * SECTOR


def test_torn_first_record_of_a_fresh_sector_is_erased_at_power_up():
    flash, journal, recs = _filled(n_sectors=8, count=15)       # the head sector has no room for 600
    nxt = (journal.run[-1][0] + 1) * SECTOR
    data = b"JR" + bytes(40)
    flash.program(nxt, data)                                    # what a torn program leaves
    again = reload(flash)
    assert again.corrupt is None and again.garbage == [nxt // SECTOR]
    again.resume()
    again.append(make_records([600], first=16)[0], 1)
    assert [p for _, p in reload(again.flash).records()] == recs + make_records([600], first=16)


def test_a_live_sector_lost_at_the_start_is_damage_not_garbage():
    flash, journal, recs = _filled(count=20)
    image = bytearray(flash.image())
    image[journal.ring.base(journal.run[0][0]) + 5] ^= 0x10     # the journal's first record rots
    again = Journal(Flash(flash.size, data=bytes(image)))
    assert again.corrupt is not None and again.resume() == 0


def test_request_ids_are_found_through_the_index():
    flash, journal, recs = _filled(count=20)
    rid = record.request_id_for("r6")
    assert journal.find_request(rid) == 6
    assert journal.find_request(record.request_id_for("r7")) is None   # odd seqs are TIME records
    assert reload(flash).find_request(rid) == 6
    journal.append(checkpoint(journal, 10), 0)
    assert journal.find_request(rid) is None                   # archived: the host dedupes it
    assert journal.find_request(record.request_id_for("r12")) == 12
    assert reload(flash).find_request(record.request_id_for("r12")) == 12


def test_full_journal_keeps_the_reserve_by_class():
    journal = Journal(Flash(4 * SECTOR))
    recs = make_records([900] * 40)
    n = 0
    with pytest.raises(JournalError) as info:
        for payload in recs:
            journal.append(payload, 2)
            n += 1
    assert info.value.name == "JOURNAL_FULL" and journal.erased_count() == 2
    assert not journal.fits([stored_size(len(recs[0]))], 2) and journal.fits([stored_size(len(recs[0]))], 1)
    journal.append(recs[n], 1)
    assert journal.erased_count() == 1
    with pytest.raises(JournalError):
        for payload in recs[n + 1:]:
            journal.append(payload, 1)
    journal.append(checkpoint(journal, journal.last_seq), 0)    # only a checkpoint takes the last
    assert journal.erased_count() == 0
    assert journal.reclaim(journal.archived[0]) == 3


def test_oversize_record_is_refused():
    journal = Journal(Flash(4 * SECTOR))
    with pytest.raises(JournalError) as info:
        journal.append(b"x" * (MAX_RECORD + 1), 0)
    assert info.value.name == "STORAGE_FAILURE"
    with pytest.raises(ValueError):
        Journal(Flash(3 * SECTOR))                              # fewer sectors than the reserves


def test_failed_program_at_a_fresh_sector_leaves_it_erased():
    flash, journal, recs = _filled(n_sectors=8, count=6)
    big = make_records([900], first=7)[0]
    while journal.head_room() >= stored_size(len(big)):
        journal.append(make_records([900], first=journal.last_seq + 1)[0], 0)
    big = make_records([900], first=journal.last_seq + 1)[0]
    flash.fail_at, flash.fail_bytes = flash.programs + 1, 10
    with pytest.raises(JournalError):
        journal.append(big, 0)
    assert reload(flash).garbage == [] and reload(flash).last_seq == journal.last_seq
    journal.append(big, 0)
    assert reload(flash).last == big


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


def test_span_covers_the_largest_stored_record():
    assert stored_size(MAX_RECORD) <= SPAN


ops = st.lists(st.one_of(st.tuples(st.just("append"), st.integers(0, 900)),
                         st.tuples(st.just("archive"), st.floats(0, 1)),
                         st.tuples(st.just("reload"), st.just(0))), min_size=1, max_size=60)


@given(ops=ops)
@settings(max_examples=80, deadline=None)
def test_any_mix_of_appends_archives_and_reloads_keeps_the_live_journal(ops):
    """Against a model (every record ever written, and first_live): the ring wraps, reclaims only
    archived sectors, and a reload finds exactly the live records, their hashes and the tail."""
    flash = Flash(6 * SECTOR)
    journal = Journal(flash)
    written = []
    for op, arg in ops:
        if op == "append":
            payload = make_records([arg], first=journal.last_seq + 1)[0]
            try:
                journal.append(payload, 2)
            except JournalError as exc:
                assert exc.name == "JOURNAL_FULL" and not journal.fits([stored_size(len(payload))], 2)
                continue
            written.append(payload)
        elif op == "archive" and journal.last_seq >= journal.first_live:
            upto = journal.first_live + int(arg * (journal.last_seq - journal.first_live))
            cp = checkpoint(journal, upto)
            if not journal.fits([stored_size(len(cp))], 0):
                continue
            journal.append(cp, 0)
            written.append(cp)
            journal.reclaim(upto)
        elif op == "reload":
            journal = reload(flash)
            flash = journal.flash
            assert journal.corrupt is None and journal.garbage == []
        assert live(journal) == written[journal.first_live - 1:]
        assert journal.head_hash == (chain_of(written)[-1] if written else record.genesis())
        assert all(e[2] > (journal.archived or [0])[0] for e in journal.run)   # archived sectors are gone
    again = reload(flash)
    assert live(again) == written[again.first_live - 1:] and again.tail == journal.tail
    if written:
        assert again.chain(again.last_seq)[1] == chain_of(written)[-1]
