"""Archive, then reclaim (issue 10), and the audit export (mixed into Owner).

The daemon keeps the device's journal from filling: after each Z (daily) closure it archives up
to it (``archive_closed``); it also reads INFO after as many seals as cannot reach the archiving
mark from the fill the last INFO gave (``seals_before_mark``: a thousand on an empty emulator
journal, one at a time close to the mark), and at once when the device answered JOURNAL_FULL; at
or above ``archive_at`` (fill in parts per million of the space invoices may use, default 50 %)
it archives:

1. reconcile, so the mirror holds every record up to the device's head; archive only up to the
   newest Z closure, closing the period first when all of it is still open (hostd/owner/closing.py);
2. write the records not archived yet (up to the head) to a durable segment file
   (hostd/store/archive.py), and check the segment before telling the device anything: seq
   continuity, the hash chain from the previous segment, and every signature with the device key;
3. ARCHIVED(last seq, its hash): the device accepts only a hash that matches its own record, writes
   a signed CHECKPOINT and erases the sectors holding only archived records
   (PROTOCOL.md 4.17); the segment is then marked acknowledged.

With sync to an authority configured (``erase_limit``), the segment ends at the last record the
authority acknowledged (hostd/store/sync.py): the device never erases a record whose only other
copy is the host's archive. An authority that is down then lets the journal fill: the daemon
answers JOURNAL_FULL (503, retryable) until it catches up.

A segment is written once and kept; the device erases only what a segment holds. The export
(``GET /api/v1/audit/export``) takes the whole history: archived segments the mirror lacks
(a rebuilt store), then the mirror, up to a head the device signs now over the auditor's
challenge, or the range from the checkpoint at or before ``from_seq``. Only the device's part
runs on the owner thread, in slices of ``CATCH_UP`` records between seals (issue 15); the file
is built from the mirror in a worker thread.
"""

import logging
import time

from protocol import cbor, record, timefmt
from hostd.books.export import build_export, dump_export
from hostd.books.keys import fast_verifier
from hostd.errors import DeviceRefused, DeviceUnavailable, HostdError, InvalidPayload
from hostd.owner.closing import last_z
from hostd.store.archive import ArchiveError

log = logging.getLogger("fiscal.owner")
CHECK_EVERY = 32        # seals between INFO checks until an INFO says how far the mark is
MAX_CHECK_EVERY = 1024  # at most this many: INFO also keeps /status and the device watch fresh
WORST_SEAL = 2048       # journal bytes one seal may take, with room: an invoice record is at most
                        # 1 KiB stored, and a fill EVENT or a closure between two checks rides in the rest
FILL_WARNINGS = (800000, 900000, 950000)   # the fill levels /status and the device watch report
CATCH_UP = 512   # records mirrored per owner job while an export catches up
DEFAULT_ARCHIVE_AT = 500000   # ppm of the journal space invoices may use


def seals_before_mark(info, archive_at):
    """Seals before the next INFO check, from the fill INFO reported: as many as cannot bring
    the journal to the next mark above it (``archive_at`` ppm, or a fill warning level), 1 to
    MAX_CHECK_EVERY; CHECK_EVERY when it is past every mark (past ``archive_at`` an archive that
    could not free space is retried at that pace, as before; JOURNAL_FULL still checks at once).
    INFO's ``fill_ppm`` is (usable - room) / usable with ``invoice_room`` the room (PROTOCOL.md
    4.3), so room x (mark - fill) / (1e6 - fill) bytes are left below a mark, and no seal takes
    more than WORST_SEAL of them."""
    fill, room = info.get("fill_ppm"), info.get("invoice_room")
    if fill is None or room is None or fill >= archive_at:   # (an INFO without them: the old pace)
        return CHECK_EVERY
    marks = [m for m in (archive_at,) + FILL_WARNINGS if m > fill]
    left = min(room * (mark - fill) // (1000000 - fill) for mark in marks)
    return max(1, min(MAX_CHECK_EVERY, left // WORST_SEAL))


class Archiving:
    """Expects Owner's ``store``, ``archive`` (hostd.store.archive.Archive or None), ``archive_at``,
    ``erase_limit``, ``info``, ``call``, ``device``, ``reconcile``, ``watch``, ``close_z``,
    ``sealed_since_check``, ``check_every`` and ``journal_full``."""

    def archive_due(self):
        """Whether the next job boundary must read INFO (the journal may have reached the mark)."""
        return self.archive is not None and (self.journal_full or self.sealed_since_check >= self.check_every)

    def maybe_archive(self, deadline):
        """Archive when the journal is past ``archive_at`` (checked when ``archive_due``)."""
        if self.client is None or not self.archive_due():
            return
        self.sealed_since_check = 0
        self.check_every = min(self.check_every, CHECK_EVERY)   # until this INFO answers
        self.info = self.call(deadline, "INFO")
        self.watch.seen(self.info)
        self.check_every = seals_before_mark(self.info, self.archive_at)
        if self.journal_full or self.info["fill_ppm"] >= self.archive_at:
            self.journal_full = False
            self.archive_now(deadline)   # which reads INFO again once the device reclaimed
            self.check_every = seals_before_mark(self.info, self.archive_at)

    def archive_now(self, deadline):
        """Archive everything up to the head and let the device reclaim it; the ARCHIVED answer."""
        self.device(deadline)
        self.reconcile()
        start = self.archive.last_seq() + 1
        rows = self.store.journal_from(start)
        closed = last_z(rows)
        if rows and closed is None:   # all of it is the open period: close it, the journal needs the space
            self.close_z(deadline, archive=False)
            rows = self.store.journal_from(start)
            closed = last_z(rows)
        if closed is not None:        # the device never erases the open period (PROTOCOL.md 4.17)
            rows = [r for r in rows if r["seq"] <= closed[0]]
        if self.erase_limit is not None:   # syncing: only what the authority acknowledged
            held = self.erase_limit()
            rows = [r for r in rows if r["seq"] <= held]
            if not rows:
                log.warning("archiving waits for the authority: it holds records up to %d, the archive up to %d",
                            held, start - 1)
        if not rows:
            return None
        if rows[0]["seq"] != start:
            raise ArchiveError("the mirror lacks records %d..%d: cannot archive past them" % (start, rows[0]["seq"] - 1))
        records = [r["record"] for r in rows]
        prev = record.genesis() if start == 1 else self.store.journal_hash(start - 1)
        self._check_segment(start, records, prev, rows[-1]["hash"])
        last = rows[-1]["seq"]
        self.archive.write(start, records, rows[-1]["hash"], time.time())
        try:
            answer = self.call(deadline, "ARCHIVED", seq=last, hash=rows[-1]["hash"])
        except DeviceRefused as exc:
            raise DeviceUnavailable("the device refused ARCHIVED up to %d: %s" % (last, exc.detail))
        self.archive.acknowledge(start)
        log.info("archived records %d..%d; the device checkpointed at %d and erased %d sectors (first live %d)",
                 start, last, answer["checkpoint_seq"], answer["erased_sectors"], answer["first_live"])
        self.info = self.call(deadline, "INFO")
        if self.info["clock"] is None:   # a full device could not journal the clock at connect
            self.client.set_time(max(int(time.time()), self.info["last_time"]))
        self.reconcile()
        return answer

    def archive_closed(self):
        """Owner job after a Z (hostd/owner/closing.py ``close_z``): archive up to it. A failure
        is logged, never the Z's answer (it was given already); the fill mark and JOURNAL_FULL
        archive later, as always."""
        try:
            self.archive_now(time.monotonic() + 30.0)
        except (HostdError, OSError, ArchiveError) as exc:
            log.error("archiving after the Z failed; it is tried again at the fill mark: %s",
                      getattr(exc, "detail", exc))

    def _check_segment(self, first, records, prev, last_hash):
        """Seq continuity, the chain and every signature, before the device may erase anything."""
        key = bytes.fromhex(self.store.meta("device")["public_key"])
        check = fast_verifier(key)
        for i, rec in enumerate(records):
            fields, body, sig = record.decode(rec)
            if fields[record.K_SEQ] != first + i:
                raise ArchiveError("record %d of the segment says seq %d" % (first + i, fields[record.K_SEQ]))
            if not check(record.signing_input(prev, body), sig):
                raise ArchiveError("record %d does not verify with the device key: not archived" % (first + i))
            prev = record.record_hash(prev, rec)
        if prev != last_hash:
            raise ArchiveError("the segment's last hash differs from the mirror's")

    def catch_up(self, budget, limit=CATCH_UP):
        """One slice of bringing the mirror up to the device's head (owner thread): at most about
        ``limit`` records, so an export of a long unmirrored journal never holds the owner for
        longer than that; True while more remain."""
        deadline = time.monotonic() + budget
        self.device(deadline)
        self.info = self.call(deadline, "INFO")
        return self.reconcile(limit)

    def export_head(self, budget, challenge=b""):
        """The device's part of an export (owner thread): INFO, the last slice of catch-up, and a
        HEAD signed over ``challenge``. Returns (info, head); ``export_file`` builds the file from
        them off the owner thread."""
        deadline = time.monotonic() + budget
        self.device(deadline)
        self.info = self.call(deadline, "INFO")
        self.reconcile()
        return dict(self.info), self.call(deadline, "HEAD", challenge=challenge)


def export_file(store, archive, info, head, from_seq=None):
    """The verifiable export (bytes) ending at ``head`` (export_head's answer): the whole history
    (archived segments the mirror lacks, then the mirror), or from the checkpoint at or before
    ``from_seq``. Reads the store and the archive only: it runs in a worker thread while the
    owner goes on sealing, so records mirrored after the head are left out."""
    head_seq = cbor.decode(bytes(head["statement"]))[record.H_SEQ]
    mirrored = [(r["seq"], r["record"]) for r in store.journal_from(1) if r["seq"] <= head_seq]
    first_mirrored = mirrored[0][0] if mirrored else 1
    older = archive.records_before(first_mirrored) if archive is not None and first_mirrored > 1 else []
    history = older + mirrored
    if from_seq is not None:
        history = _from_anchor(history, from_seq)
    return dump_export(build_export([rec for _, rec in history], info, head, timefmt.format_time(int(time.time()))))


def _from_anchor(history, from_seq):
    """The records from the last CHECKPOINT at or before ``from_seq`` (or from seq 1) to the end."""
    start = 0
    for i, (seq, rec) in enumerate(history):
        if seq > from_seq:
            break
        if record.type_of(rec) == record.CHECKPOINT:
            start = i
    if not history or history[0][0] != 1 and start == 0 and record.type_of(history[0][1]) != record.CHECKPOINT:
        raise InvalidPayload("no checkpoint at or before record %d anchors a range" % from_seq, "from_seq")
    return history[start:]
