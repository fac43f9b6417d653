"""Closures on the owner thread: Z, M, Y and X from the device, their reports and bundles (issue 11).

- **Z** (CLOSE Z, PROTOCOL.md 4.22): the device closes everything since its previous Z. A Z's
  period is a UTC day, by default the day of the device clock; a day may be closed more than once
  (the second Z covers what came after the first), never before the newest Z's day.
- **M** and **Y**: the device signs them from the Z (M) closures the host sends back, which must
  continue the chain from where the previous M (Y) ended and be terminated by the first closure
  of a later period unless they end at the device's newest one. The host keeps every closure in
  the store (hostd/store/closures.py), also those the device has erased, so it always has them.
  A month or year with earlier unclosed months (years) before it is refused: close those first.
- **X**: the device's own figures of the open period, never summed by the host.

The device never erases the open period (ARCHIVE_OPEN_PERIOD, PROTOCOL.md 4.17), so archiving
goes only up to the newest Z, and closes the period first when all of it is still open and the
journal needs the space (hostd/owner/archiving.py).

``note`` files what the mirror holds beyond the ``noted_seq`` mark: closures, the technical log,
and for each new closure its report and bundle (hostd/books/closures.py) in ``bundles_dir``.
"""

import json
import logging
import time

from protocol import record, timefmt
from hostd.books import closures as views
from hostd.books import events
from hostd.errors import DeviceRefused, InvalidPayload, ReportRefused
from hostd.store.closures import write_file

log = logging.getLogger("fiscal.owner")
INNER = {"M": "Z", "Y": "M"}
NOTE_SLICE = 2000
MARK_EVERY = 1000   # invoice records passed over before the mark is moved without anything to note


def last_z(rows):
    """(seq, period) of the newest Z closure among mirrored ``rows`` (seq, record, hash), or None."""
    for seq, rec, _ in reversed(rows):
        if record.type_of(rec) == record.CLOSURE:
            fields = record.decode(rec)[0]
            if fields[record.K_KIND] == "Z":
                return seq, fields[record.K_PERIOD]
    return None


def report_id(kind, period, seq):
    return "%s-%s-%d" % (kind, period, seq)


class Closing:
    """Expects Owner's ``call``, ``store``, ``closures`` (hostd/store/closures.py), ``bundles_dir``,
    ``reconcile``, ``on_event``, ``run``, ``archive`` and ``archive_closed``."""

    def z_period(self, deadline):
        """Today's UTC date by the device clock (its last record's time when the clock is unset),
        not before the newest Z's period."""
        info = self.call(deadline, "INFO")
        now = info["clock"] if info["clock"] is not None else info["last_time"]
        day = timefmt.format_time(max(now, info["last_time"]))[:10]
        newest = self.closures.newest("Z")
        return max(day, newest["period"]) if newest is not None else day

    def close_z(self, deadline, period=None, archive=True):
        """CLOSE Z of ``period`` (default :meth:`z_period`); file it; return its report row. With
        archiving on, an owner job right after this one archives up to the new Z (issue 10: the
        daemon archives after each daily closure, so the device reclaims the closed day), without
        holding up the Z's answer; ``archive`` False is archiving's own Z."""
        period = period or self.z_period(deadline)
        answer = self._close(deadline, "Z", period, [])
        log.info("closed Z %s at record %d", period, answer["seq"])
        row = self._closure_report(answer["seq"])
        if archive and self.archive is not None:
            try:
                self.run(self.archive_closed)
            except RuntimeError:   # the owner is shutting down: the fill mark archives it later
                log.info("not archiving after Z %s: the daemon is stopping", period)
        return row

    def close_outer(self, deadline, kind, period):
        """CLOSE M (``YYYY-MM``) or Y (``YYYY``) from the closures below it the store holds."""
        inner = INNER[kind]
        self.catch_up_all(deadline)
        previous = self.closures.newest(kind)
        after = 0
        if previous is not None:
            after = record.decode(bytes(previous["record"]))[0][record.K_RANGE][1]
        pending = self.closures.of_kind(inner, after)
        early = [r for r in pending if r["period"] < period and not r["period"].startswith(period + "-")]
        if early:
            raise ReportRefused("the %s closures of %s are not in any %s closure yet: close %s first"
                                 % (inner, early[0]["period"], kind, early[0]["period"][:len(period)]))
        mine = [r for r in pending if r["period"].startswith(period + "-")]
        later = [r for r in pending if r["period"] > period and not r["period"].startswith(period + "-")]
        sent = [bytes(r["record"]) for r in mine] + [bytes(r["record"]) for r in later[:1]]
        answer = self._close(deadline, kind, period, sent)
        log.info("closed %s %s from %d %s closures at record %d", kind, period, len(mine), inner, answer["seq"])
        return self._closure_report(answer["seq"])

    def _close(self, deadline, kind, period, records):
        try:
            answer = self.device(deadline).close_period(kind, period, records)
        except DeviceRefused as exc:
            raise ReportRefused("the device refused the %s closure of %s: %s" % (kind, period, exc.device_detail),
                                device_code=exc.name)
        self.catch_up_all(deadline)
        return answer

    def catch_up_all(self, deadline):
        """Mirror, file and note everything the device holds (INFO first: reconcile goes by it)."""
        self.info = self.call(deadline, "INFO")
        self.reconcile()
        self.note()

    def _closure_report(self, seq):
        row = self.closures.report_of_closure(seq)
        if row is None:
            raise InvalidPayload("closure record %d was not filed" % seq, "report")
        return row

    def x_figures(self, budget):
        """X: (figures, head hash) of the open period, from the device."""
        deadline = time.monotonic() + budget
        figures = self.call(deadline, "X")["figures"]
        info = self.call(deadline, "INFO")
        return figures, bytes(info["last_hash"])

    # -- filing closures and the technical log ----------------------------------------------
    def note(self):
        """File the closures and technical records mirrored since ``noted_seq``, then the report
        and bundle of every new closure. Invoice records passed over are remembered in memory
        (``scanned``) and the mark moves every MARK_EVERY of them, so a seal costs no write here."""
        while True:
            noted = self.closures.noted_seq()
            start = max(noted, self.scanned) + 1
            rows = self.closures.mirror_after(start, NOTE_SLICE)
            if not rows:
                return
            closures, technical = [], []
            for seq, rec, digest in rows:
                rtype = record.type_of(rec)
                if rtype == record.INVOICE:
                    continue
                fields = record.decode(rec)[0]
                technical.append(views.technical_entry(seq, fields, rtype))
                if rtype == record.CLOSURE:
                    first, last = fields[record.K_RANGE]
                    closures.append((seq, fields[record.K_KIND], fields[record.K_PERIOD], bytes(rec), bytes(digest),
                                     first, last, fields[record.K_TIME]))
            self.scanned = rows[-1]["seq"]
            if not technical and self.scanned - noted < MARK_EVERY:
                return   # only invoices so far: no write per seal (issue 15), the mark moves later
            self.closures.note(closures, technical, self.scanned)
            for c in closures:
                self._report_closure(c[0])

    def _report_closure(self, seq):
        """Write the bundle of closure ``seq`` and file its report (once)."""
        if self.closures.report_of_closure(seq) is not None:
            return
        row = self.closures.closure(seq)
        fields = record.decode(bytes(row["record"]))[0]
        device = self.store.meta("device")
        if row["kind"] == "Z":
            first, last = fields[record.K_RANGE]
            invoices = self.store.invoices_in_seqs(first, last)
            missing = sum(1 for r in invoices if r["canonical"] is None)
        else:
            invoices, missing = [], 0
        data, digest = views.bundle(row, fields, device, invoices, missing)
        rid = report_id(row["kind"], row["period"], seq)
        path = self._write_bundle(rid, data, digest)
        summary = views.summary(fields, device["device_id"])
        now = time.time()
        doc = {"report_id": rid, "type": row["kind"], "period": row["period"], "outlet_id": None, "created": now,
               "ledger_hash": bytes(row["hash"]).hex(), "closure_seq": seq, "file": path, "sha256": digest,
               "idempotency_key": None, "summary": json.dumps(summary, sort_keys=True)}
        self.closures.add_report(doc, (events.REPORT_GENERATED, events.report_generated(doc, summary)), now)
        if self.on_event is not None:
            self.on_event()

    def _write_bundle(self, rid, data, digest):
        return None if self.bundles_dir is None else write_file(self.bundles_dir, rid + ".json", data, digest)
