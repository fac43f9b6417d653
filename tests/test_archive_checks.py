"""When the daemon reads INFO to decide on archiving (hostd/owner/archiving.py ``seals_before_mark``),
and that a segment which does not verify is never archived.

Reading INFO every 32 seals stalled the group-commit pipeline for nothing on a large, mostly
empty journal (issue 15); the interval now follows the distance to the archiving mark. It must
never let the journal pass the mark unseen: however large each seal is (up to WORST_SEAL), the
seals before the next check cannot reach it.
"""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostd.owner import archiving
from hostd.owner.owner import Owner
from hostd.store.archive import Archive, ArchiveError
from hostd.store.store import Store
from tests.daemonkit import sample
from tests.devkit import Bench
from tests.test_owner import CoreClient, add


@st.composite
def journals(draw):
    usable = draw(st.integers(4096, 64 * 1024 * 1024))
    room = draw(st.integers(0, usable))
    fill = (usable - room) * 1000000 // usable          # as the device reports it (device/core.py _fill)
    mark = draw(st.integers(1, 1000000))
    return usable, room, fill, mark


@given(journals())
@settings(max_examples=500, deadline=None)
def test_the_seals_before_the_next_check_cannot_pass_the_mark(journal):
    usable, room, fill, mark = journal
    n = archiving.seals_before_mark({"fill_ppm": fill, "invoice_room": room}, mark)
    assert 1 <= n <= archiving.MAX_CHECK_EVERY
    if fill < mark and n > 1:   # n worst-case seals later the fill is at or below the mark and
        after = (usable - (room - n * archiving.WORST_SEAL)) * 1000000 / usable   # every warning level
        assert after <= min([m for m in (mark,) + archiving.FILL_WARNINGS if m > fill]) + 1, (n, after)


def test_an_empty_journal_is_checked_rarely_and_a_nearly_full_one_at_every_seal():
    empty = {"fill_ppm": 1000, "invoice_room": 16 * 1024 * 1024}
    assert archiving.seals_before_mark(empty, 500000) == archiving.MAX_CHECK_EVERY
    board = {"fill_ppm": 100000, "invoice_room": 230 * 1024}    # a 256 KiB board journal at 10 %
    assert 1 < archiving.seals_before_mark(board, 500000) < 64
    assert archiving.seals_before_mark({"fill_ppm": 499000, "invoice_room": 130 * 1024}, 500000) == 1
    # past the mark: an archive that could not free space is tried again at the old pace, not per seal
    assert archiving.seals_before_mark({"fill_ppm": 600000, "invoice_room": 100 * 1024}, 500000) == \
        archiving.CHECK_EVERY
    assert archiving.seals_before_mark({}, 500000) == archiving.CHECK_EVERY


def test_a_fill_warning_level_below_a_high_archiving_mark_is_checked_for_too():
    info = {"fill_ppm": 790000, "invoice_room": 3 * 1024 * 1024}     # a 16 MiB journal at 79 %
    at_warning = archiving.seals_before_mark(info, 800000)   # as if the mark were the 80 % warning
    assert archiving.seals_before_mark(info, 990000) == at_warning < archiving.MAX_CHECK_EVERY


def test_a_segment_that_does_not_verify_is_never_archived_and_the_device_erases_nothing(tmp_path):
    """Issue 10, step 2 of archiving: the segment is checked (seq, chain, every signature) before
    the device is told anything. A mirror record changed on the host's disk stops the archive:
    no ARCHIVED, no acknowledged segment, the device's journal untouched; sealing goes on."""
    bench = Bench()
    store = Store(str(tmp_path / "fiscal.sqlite"))
    archive = Archive(store, str(tmp_path / "archive"))
    owner = Owner("memory", store, archive=archive,
                  client_factory=lambda path, timeout, on_sent: CoreClient(bench, on_sent=on_sent))
    for i in range(5):
        add(store, "1p:a-%d" % i, sample(cashier_id="a-%d" % i))
        assert owner.run(owner.seal, "1p:a-%d" % i, 5).result()[0] == 200
    owner.run(owner.close_z, time.monotonic() + 5, None, False).result()
    seq, rec = store.db.execute("SELECT seq, record FROM journal WHERE seq=4").fetchone()
    store.db.execute("UPDATE journal SET record=? WHERE seq=?", (bytes(rec[:40]) + bytes([rec[40] ^ 1]) + bytes(rec[41:]), seq))
    before = bench.ok("INFO")
    with pytest.raises(ArchiveError, match="record 4 does not verify"):
        owner.run(owner.archive_now, time.monotonic() + 5).result()
    after = bench.ok("INFO")
    assert after["archived_seq"] == before["archived_seq"] == 0 and after["first_live"] == 1
    assert archive.acknowledged_seq() == 0
    add(store, "1p:next", sample(cashier_id="next"))
    assert owner.run(owner.seal, "1p:next", 5).result()[0] == 200
