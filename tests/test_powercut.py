"""Power cut after every flash program of a COMMIT, of a SEAL_BATCH, and of ARCHIVED -> CHECKPOINT -> erase.

DESIGN-NOTES section 2.2: after a cut at any point the device comes back with counter c or c+1,
the journal proves which, and the request is sealed exactly when the counter advanced. Issue 10:
a cut anywhere in archiving (each program of the checkpoint, each erase, and each erase of the
power-up that resumes it) leaves a journal that recovers and verifies, the counter unchanged,
every record after the archived seq S still there, and the archived state either "not yet" or
"done". The cut points are enumerated exhaustively: every program, every byte count that can
land and a half-programmed byte on top; for erases, prefixes from none to all of the sector,
with and without garbage left behind. Issue 15: the journal syncs the flash once per record (once
per SEAL_BATCH), so a cut can also fall between the last program and the sync; a cut anywhere in a
batch leaves a prefix of its new entries sealed, and every request recovers by its request id.
"""

import pytest

from device.flash import Flash
from protocol import batch, messages, record
from protocol.errors import PowerCut
from tests.devkit import T0, Bench, encode_invoice, make_invoice

INVOICE = encode_invoice(make_invoice(lines=((1500, 12345, "TG02"), (3000, 999, "TG03"), (1000, 250000, "TG01"))))
RID = record.request_id_for("1p:powercut")


def _prepared_bench():
    bench = Bench()
    bench.ok("SET_TIME", time=T0)
    bench.ok("COMMIT", nonce=bench.prepare(INVOICE)[1]["nonce"])   # counter 1 before the cut
    nonce = bench.prepare(INVOICE, RID)[1]["nonce"]
    return bench, nonce


def _programs(run):
    """The size of each program ``run(bench)`` issues, measured on a dry run."""
    bench, nonce = _prepared_bench()
    sizes = []
    real = bench.flash.program

    def spy(offset, data):
        sizes.append(len(data))
        return real(offset, data)
    bench.flash.program = spy
    run(bench, nonce)
    return sizes


PROGRAMS = _programs(lambda bench, nonce: bench.ok("COMMIT", nonce=nonce))
CASES = [(k, land, mask) for k, size in enumerate(PROGRAMS) for land in range(size + 1)
         for mask in ((None, 0x0F) if land < size else (None,))]
# A cut between the record's last program and its sync: every page landed, nothing answered.
SYNC_CUT = (len(PROGRAMS), 0, None)


def test_commit_takes_several_page_programs():
    assert len(PROGRAMS) >= 2, PROGRAMS   # the record spans pages, so there is a "middle" to cut


def test_commit_syncs_once_after_all_its_programs():
    """Issue 15: all pages of the record are programmed, then the flash syncs once."""
    bench, nonce = _prepared_bench()
    order = []
    real_program, real_sync = bench.flash.program, bench.flash.sync
    bench.flash.program = lambda offset, data: (order.append("program"), real_program(offset, data))[1]
    bench.flash.sync = lambda: (order.append("sync"), real_sync())[1]
    bench.ok("COMMIT", nonce=nonce)
    assert order == ["program"] * len(PROGRAMS) + ["sync"]


@pytest.mark.parametrize("k,land,mask", CASES + [SYNC_CUT])
def test_cut_during_commit(k, land, mask):
    bench, nonce = _prepared_bench()
    c = bench.core.counter
    if k == len(PROGRAMS):
        bench.flash.cut_sync_after = bench.flash.syncs
    else:
        bench.flash.cut_after = bench.flash.programs + k
        bench.flash.cut_bytes = land
        bench.flash.cut_mask = mask
    with pytest.raises(PowerCut):
        bench.call("COMMIT", nonce=nonce)
    bench.reboot()
    counter = bench.core.counter
    assert counter in (c, c + 1)
    if k == len(PROGRAMS):
        assert counter == c + 1   # all its pages landed: sealed, though the answer never left
    summary = bench.verify()
    assert summary["counter"] == counter
    assert bench.ok("STATUS", nonce=nonce) == {"state": messages.UNKNOWN}   # the nonce ring is RAM
    state = bench.ok("STATUS", request_id=RID)
    assert (state["state"] == messages.COMMITTED) == (counter == c + 1)
    bench.ok("SET_TIME", time=T0 + 10)
    # The host repeats the request by its id: the seal it already has, or a new one, exactly once.
    again = bench.ok("SEAL", request_id=RID, total=len(INVOICE), offset=0, data=INVOICE)
    assert again["replayed"] == (counter == c + 1) and again["sealed"][record.S_COUNTER] == c + 1
    if counter == c + 1:
        assert again["sealed"] == state["sealed"]
    bench.reboot()
    assert bench.core.counter == c + 1
    assert bench.verify()["counter"] == c + 1
    assert len([r for r in bench.records() if RID in r]) == 1


def test_failed_program_leaves_state_unchanged():
    bench, nonce = _prepared_bench()
    c = bench.core.counter
    bench.flash.fail_at = bench.flash.programs + 1
    bench.flash.fail_bytes = 5
    assert bench.call("COMMIT", nonce=nonce)[0] == "STORAGE_FAILURE"
    assert bench.core.counter == c
    assert bench.ok("STATUS", nonce=nonce)["state"] == messages.PREPARED
    assert bench.ok("COMMIT", nonce=nonce)["sealed"][2] == c + 1   # retry lands past the torn bytes
    bench.reboot()
    assert bench.verify()["counter"] == c + 1


def test_failed_program_that_landed_counts_as_sealed():
    """A program reporting failure after writing everything: the record is on flash, so it is sealed."""
    bench, nonce = _prepared_bench()
    c = bench.core.counter
    bench.flash.fail_at = bench.flash.programs + len(PROGRAMS)
    bench.flash.fail_bytes = 10 ** 6
    answer = bench.ok("COMMIT", nonce=nonce)
    assert answer["sealed"][2] == c + 1
    bench.reboot()
    assert bench.core.counter == c + 1


# -- ARCHIVED -> CHECKPOINT -> erase ---------------------------------------------------------------

def _full_image():
    """A 12-sector journal with invoices in six sectors and a host archive of all of it."""
    bench = Bench(flash_size=12 * 4096)
    bench.ok("SET_TIME", time=T0)
    while len(bench.core.journal.run) < 7:
        assert bench.seal(INVOICE)[0] == "OK"
    assert bench.close_z()[0] == "OK"      # ARCHIVED never erases the open period
    return bench


BASE = _full_image()
IMAGE = BASE.flash.image()
RUN = [list(e) for e in BASE.core.journal.run]
# S at the end of the fourth sector: four sectors can go; and S inside the fifth, with live
# records between S and the checkpoint that must survive (the host archived less than the head).
TARGETS = {"sector end": RUN[3][2], "inside a sector": RUN[4][1] + 2}


def _archive_bench(target):
    bench = Bench(flash_size=12 * 4096, image=IMAGE)
    before = bench.records()
    s = TARGETS[target]
    bench.archive = before[:s]
    return bench, s, bench.core.journal.chain(s)[1], before


def _check_after_cut(bench, s, h, before):
    """The journal recovered: it verifies, counter unchanged, every record after S still there,
    and archiving is either not done or done (then finished: no archived sector left)."""
    bench.reboot()
    j = bench.core.journal
    assert j.corrupt is None and bench.core.fault == ""
    summary = bench.verify()
    assert summary["counter"] == bench.core.counter == BASE.core.counter
    history = bench.history()
    assert history[:len(before)] == before           # nothing unarchived lost, nothing altered
    if j.archived is not None and j.archived[0] == s:
        assert j.archived[1] == h and j.first_live == s + 1 and j.run[0][2] > s
        assert record.type_of(history[j.checkpoint - 1]) == record.CHECKPOINT
    else:
        assert j.first_live == 1 and j.archived is None
    # Re-sending the same ARCHIVED is harmless and completes the archiving in every case.
    answer = bench.ok("ARCHIVED", seq=s, hash=h)
    assert answer["first_live"] == s + 1 and bench.core.journal.run[0][2] > s
    again = bench.ok("ARCHIVED", seq=s, hash=h)
    assert again == dict(answer, erased_sectors=0)
    bench.reboot()
    assert bench.verify()["counter"] == BASE.core.counter
    assert bench.history()[:len(before)] == before


def _archive_programs(target):
    bench, s, h, _ = _archive_bench(target)
    sizes = []
    real = bench.flash.program

    def spy(offset, data):
        sizes.append(len(data))
        return real(offset, data)
    bench.flash.program = spy
    erased = bench.ok("ARCHIVED", seq=s, hash=h)["erased_sectors"]
    return sizes, erased


ARCHIVE_PROGRAMS = {t: _archive_programs(t) for t in TARGETS}
# Every byte of every checkpoint program for S at a sector end; every 7th byte for the other S.
PROGRAM_CUTS = [(t, k, land, mask) for t in TARGETS for k, size in enumerate(ARCHIVE_PROGRAMS[t][0])
                for land in range(0, size + 1, 1 if t == "sector end" else 7)
                for mask in ((None, 0x0F) if land < size else (None,))]
ERASE_CUTS = [(t, k, prefix, garbage) for t in TARGETS for k in range(ARCHIVE_PROGRAMS[t][1])
              for prefix in (0, 1, 16, 1000, 2048, 4095, 4096) for garbage in (None, 0x00, 0x5A)]


def test_archiving_is_what_the_cut_tests_assume():
    for target in TARGETS:
        sizes, erased = ARCHIVE_PROGRAMS[target]
        assert len(sizes) >= 1 and erased == 4
    assert len(PROGRAM_CUTS) > 100 and len(ERASE_CUTS) >= 100


@pytest.mark.parametrize("target,k,land,mask", PROGRAM_CUTS)
def test_cut_while_writing_the_checkpoint(target, k, land, mask):
    bench, s, h, before = _archive_bench(target)
    bench.flash.cut_after, bench.flash.cut_bytes, bench.flash.cut_mask = bench.flash.programs + k, land, mask
    with pytest.raises(PowerCut):
        bench.call("ARCHIVED", seq=s, hash=h)
    _check_after_cut(bench, s, h, before)


@pytest.mark.parametrize("target,k,prefix,garbage", ERASE_CUTS)
def test_cut_while_erasing(target, k, prefix, garbage):
    bench, s, h, before = _archive_bench(target)
    f = bench.flash
    f.cut_erase_after, f.erase_cut_bytes, f.erase_garbage = f.erases + k, prefix, garbage
    with pytest.raises(PowerCut):
        bench.call("ARCHIVED", seq=s, hash=h)
    _check_after_cut(bench, s, h, before)


@pytest.mark.parametrize("prefix,garbage", [(0, None), (100, 0x00), (4095, 0x5A)])
@pytest.mark.parametrize("again", [0, 1])
def test_cut_while_power_up_resumes_the_erase(prefix, garbage, again):
    """The power-up that finishes an interrupted erase is itself cut, at its first or second erase."""
    bench, s, h, before = _archive_bench("sector end")
    f = bench.flash
    f.cut_erase_after, f.erase_cut_bytes, f.erase_garbage = f.erases + 1, prefix, garbage
    with pytest.raises(PowerCut):
        bench.call("ARCHIVED", seq=s, hash=h)
    f.revive()
    f.cut_erase_after, f.erase_cut_bytes, f.erase_garbage = f.erases + again, prefix, garbage
    with pytest.raises(PowerCut):
        bench.boot(revive=False)
    _check_after_cut(bench, s, h, before)


def test_cut_in_the_power_up_after_archiving_a_full_device():
    """Full device: no POWER_UP fits; ARCHIVED writes the checkpoint, reclaims, then the POWER_UP."""
    bench = Bench(flash_size=4 * 4096)
    bench.ok("SET_TIME", time=T0)
    while bench.seal(INVOICE)[0] == "OK":
        pass
    while bench.core.fault != "JOURNAL_FULL":
        bench.reboot()
    assert bench.close_z(bench.z_period())[0] == "OK"   # a closure keeps no reserve: it fits a full device
    c = bench.core.counter
    before = bench.records()
    bench.archive = list(before)
    h = bench.core.last_hash
    programs = _count_programs(bench, len(before), h)
    for k in range(programs):
        trial = Bench(flash_size=4 * 4096, image=bench.flash.image(), boot=False)
        trial.archive = list(before)
        trial.boot()
        trial.flash.cut_after = trial.flash.programs + k
        with pytest.raises(PowerCut):
            trial.call("ARCHIVED", seq=len(before), hash=h)
        trial.reboot()
        assert trial.core.counter == c and trial.history()[:len(before)] == before
        assert trial.ok("ARCHIVED", seq=len(before), hash=h)["first_live"] == len(before) + 1
        assert trial.core.fault == "" and trial.verify()["counter"] == c


def _count_programs(bench, s, h):
    trial = Bench(flash_size=4 * 4096, image=bench.flash.image())
    start = trial.flash.programs
    trial.ok("ARCHIVED", seq=s, hash=h)
    return trial.flash.programs - start


def test_flash_image_helper_keeps_the_state():
    bench = Bench(flash_size=12 * 4096, image=IMAGE)
    assert isinstance(bench.flash, Flash) and bench.core.counter == BASE.core.counter


# -- SEAL_BATCH: a cut at every program of the batch, and at its one sync -----------------------

BATCH = [(record.request_id_for("1p:powercut-batch:%d" % i),
          encode_invoice(make_invoice(lines=((1000 + i, 4321, "TG02"), (2000, 999 + i, "TG03"))))) for i in range(4)]
# entry 1 was sealed before the batch (a replay); entry 2 is PREPAREd (the batch consumes its nonce)
NEW = (0, 2, 3)


def _batch_bench():
    bench = Bench()
    bench.ok("SET_TIME", time=T0)
    assert bench.seal(BATCH[1][1], BATCH[1][0])[0] == "OK"
    bench.prepare(BATCH[2][1], BATCH[2][0])
    return bench


def _send_batch(bench):
    doc = batch.encode(BATCH)
    return bench.call("SEAL_BATCH", total=len(doc), offset=0, data=doc)


def _batch_programs():
    bench = _batch_bench()
    sizes = []
    real = bench.flash.program

    def spy(offset, data):
        sizes.append(len(data))
        return real(offset, data)
    bench.flash.program = spy
    syncs = bench.flash.syncs
    status, answer = _send_batch(bench)
    assert status == "OK" and [r[2] for r in answer["results"]] == [False, True, False, False]
    assert bench.flash.syncs == syncs + 1
    return sizes


BATCH_PROGRAMS = _batch_programs()
BATCH_CUTS = [(k, land, mask) for k, size in enumerate(BATCH_PROGRAMS)
              for land in sorted(set(list(range(0, size, 7)) + [1, size - 1, size]))
              for mask in ((None, 0x0F) if land < size else (None,))] + [(len(BATCH_PROGRAMS), 0, None)]


def test_batch_programs_every_record_before_its_one_sync():
    assert len(BATCH_PROGRAMS) >= len(NEW) and len(BATCH_CUTS) > 5 * len(BATCH_PROGRAMS)


@pytest.mark.parametrize("k,land,mask", BATCH_CUTS)
def test_cut_during_a_batch_leaves_a_prefix_sealed(k, land, mask):
    bench = _batch_bench()
    c = bench.core.counter
    if k == len(BATCH_PROGRAMS):
        bench.flash.cut_sync_after = bench.flash.syncs          # every record landed, no answer
    else:
        bench.flash.cut_after, bench.flash.cut_bytes, bench.flash.cut_mask = bench.flash.programs + k, land, mask
    with pytest.raises(PowerCut):
        _send_batch(bench)
    bench.reboot()
    counter = bench.core.counter
    assert bench.verify()["counter"] == counter
    states = [bench.ok("STATUS", request_id=r) for r, _ in BATCH]
    committed = [s["state"] == messages.COMMITTED for s in states]
    assert committed[1]                                          # sealed before the batch: still
    done = [committed[i] for i in NEW]
    m = done.count(True)
    assert done == [True] * m + [False] * (len(NEW) - m) and counter == c + m   # a prefix, nothing else
    if k == len(BATCH_PROGRAMS):
        assert m == len(NEW)
    # every request recovers: the same batch again seals the rest and replays the sealed ones
    bench.ok("SET_TIME", time=T0 + 10)
    status, answer = _send_batch(bench)
    assert status == "OK" and [r[0] for r in answer["results"]] == [0, 0, 0, 0]
    assert [r[2] for r in answer["results"]] == [committed[i] for i in range(len(BATCH))]
    for i, (r, _) in enumerate(BATCH):
        now = bench.ok("STATUS", request_id=r)["sealed"]
        if committed[i]:
            assert now == states[i]["sealed"]
    bench.reboot()
    assert bench.core.counter == c + len(NEW) and bench.verify()["counter"] == c + len(NEW)
    for r, _ in BATCH:
        assert len([rec for rec in bench.records() if r in rec]) == 1
