"""Archive, then reclaim: ARCHIVED and the running totals (PROTOCOL.md 4.17, 7.5, 8).

The host reads the journal out, stores it durably, and acknowledges
it with ARCHIVED(seq S, record hash H). The device accepts only its own hash of record S, so
nothing it never sent can be erased (the German TSE's ``ErrorUnexportedStoredData`` rule); it
writes a signed CHECKPOINT (the chain head as explicit prev, the running totals, ``archived =
[S, H]``) and only then erases, oldest first, the sectors whose records are all archived. A power
cut anywhere in that sequence is finished at the next power-up (device/journal.py ``resume``).

Running totals are not kept in invoice records: they are the newest checkpoint's totals plus the
invoices after it, summed on first use (``totals``, for the checkpoint) and then kept up to date
by every invoice record (device/core.py ``_count``), so power-up stays cheap.

ARCHIVED never erases the open period (records after the newest Z closure, ARCHIVE_OPEN_PERIOD),
so a Z and X can always re-read their period from flash; the checkpoint also carries what the
next closure and credit need once older records are gone (device/books.py).

Imported only by ARCHIVED, like device/credits.py (device/core.py); the fill level and its events,
which every record needs, are in device/core.py.
"""

from protocol import cbor, record
from protocol.errors import JournalError, MessageError
from device import books


def totals(core):
    """The running totals: computed on first use, then kept up to date by ``core._count``."""
    if core.totals is None:
        j = core.journal
        out, first = [], 1
        if j.checkpoint:
            out = record.decode(j.read(j.checkpoint))[0][record.K_TOTALS]
            first = j.checkpoint + 1
        core.totals = out
        for _, payload in j.records(first):
            if record.type_of(payload) == record.INVOICE:
                core._count(cbor.decode(payload[:-record.SIG_LEN]))
    return core.totals


def on_archived(core, fields):
    s, h = fields["seq"], bytes(fields["hash"])
    j = core.journal
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
        extra = books.checkpoint_fields(core)
        extra[record.K_PREV], extra[record.K_TOTALS], extra[record.K_ARCHIVED] = j.head_hash, totals(core), [s, h]
        core._append(record.CHECKPOINT, extra, core._time_or_last())
    erased = j.reclaim(s)
    if core.fault == "JOURNAL_FULL":   # the POWER_UP that did not fit may fit now
        core._power_up()
    return {"checkpoint_seq": j.checkpoint, "first_live": j.first_live, "erased_sectors": erased}
