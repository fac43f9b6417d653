"""Archive, then reclaim: ARCHIVED, the running totals, and the fill level (PROTOCOL.md 4.17, 7.5, 8).

Mixed into device.core.Core. The host reads the journal out, stores it durably, and acknowledges
it with ARCHIVED(seq S, record hash H). The device accepts only its own hash of record S, so
nothing it never sent can be erased (the German TSE's ``ErrorUnexportedStoredData`` rule); it
writes a signed CHECKPOINT (the chain head as explicit prev, the running totals, ``archived =
[S, H]``) and only then erases, oldest first, the sectors whose records are all archived. A power
cut anywhere in that sequence is finished at the next power-up (device/journal.py ``resume``).

Running totals are not kept in invoice records: they are the newest checkpoint's totals plus the
invoices after it, summed on first use and then kept up to date, so power-up stays cheap.

ARCHIVED never erases the open period (records after the newest Z closure, ARCHIVE_OPEN_PERIOD),
so a Z and X can always re-read their period from flash; the checkpoint also carries what the
next closure and credit need once older records are gone (device/books.py).
"""

from protocol import cbor, invoice, record
from protocol.errors import JournalError, MessageError

FILL_LEVELS = (800000, 900000, 950000)


class Archive:
    def _totals(self):
        if self.totals is None:
            j = self.journal
            totals, first = [], 1
            if j.checkpoint:
                totals = record.decode(j.read(j.checkpoint))[0][record.K_TOTALS]
                first = j.checkpoint + 1
            self.totals = totals
            for _, payload in j.records(first):
                if record.type_of(payload) == record.INVOICE:
                    self._count(cbor.decode(payload[:-record.SIG_LEN]))
        return self.totals

    def _count(self, fields):
        """Add one invoice record to the running totals, if they are being kept."""
        if self.totals is not None:
            self.totals = record.add_totals(self.totals, record.signed_groups(
                fields[record.K_GROUPS], fields[record.K_INVOICE_TYPE], invoice.CREDIT_TYPES))

    def _fill(self):
        """Fill level in ppm of the space invoices may use (PROTOCOL.md 4.3 ``fill_ppm``)."""
        j = self.journal
        usable = j.capacity() - 2 * j.ring.sector
        return min(1000000, (usable - j.room(2)) * 1000000 // usable)

    def _fill_events(self, before, t):
        """An EVENT record each time the fill level crosses 80, 90 or 95 % upward, when it fits
        beside the invoices of the pending nonces (it never takes the room they were promised)."""
        after = self._fill()
        for level in FILL_LEVELS:
            sizes = [self.nonces.pending[n]["size"] for n in sorted(self.nonces.pending)]
            if before < level <= after and self.journal.fits(sizes + [256], 2):
                self._append(record.EVENT, {record.K_EVENT: "fill_%d" % (level // 10000),
                                            record.K_DETAIL: {1: after}}, t)

    def _retry_power_up(self):
        if self.fault == "JOURNAL_FULL":
            self._power_up()

    def _on_archived(self, fields):
        s, h = fields["seq"], bytes(fields["hash"])
        j = self.journal
        if len(h) != record.HASH_LEN:
            raise MessageError("MESSAGE_FIELD", "hash must be %d bytes" % record.HASH_LEN)
        if j.archived is None or s != j.archived[0] or h != j.archived[1]:
            if s < j.first_live or s > j.last_seq:
                raise JournalError("ARCHIVE_RANGE", "seq %d is outside the live journal %d..%d"
                                   % (s, j.first_live, j.last_seq))
            if s > j.closed.get("Z", 0):
                raise JournalError("ARCHIVE_OPEN_PERIOD", "records after %d are the open period; close it (CLOSE Z) "
                                   "before archiving them" % j.closed.get("Z", 0))
            if j.chain(s)[1] != h:
                raise JournalError("ARCHIVE_HASH_MISMATCH", "hash is not the device's hash of record %d" % s)
            if j.erased_count() == 0 and j.run[0][2] > s:
                # The head sector's room is all a checkpoint may still use: spend it on one that frees.
                raise JournalError("JOURNAL_FULL", "no sector is erased: archive at least up to record %d"
                                   % j.run[0][2])
            from device import books
            extra = books.checkpoint_fields(self)
            extra[record.K_PREV], extra[record.K_TOTALS], extra[record.K_ARCHIVED] = j.head_hash, self._totals(), [s, h]
            self._append(record.CHECKPOINT, extra, self._time_or_last())
        erased = j.reclaim(s)
        self._retry_power_up()
        return {"checkpoint_seq": j.checkpoint, "first_live": j.first_live, "erased_sectors": erased}
