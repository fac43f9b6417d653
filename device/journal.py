"""The journal: a ring of flash sectors holding signed records, archived and then reclaimed.

One programmed record decides everything (DESIGN-NOTES section 2): appends only clear bits of
erased flash, page by page, into the head sector or the next erased sector in ring order; a torn
record counts as never written (device/recovery.py finds the tail again at power-up). Sectors are
erased only by ARCHIVED (after a signed CHECKPOINT saying what was archived) and by the power-up
resume of an interrupted erase, never on the commit path. PROTOCOL.md section 8 is the spec.

Space is reserved by record class (``append(payload, reserve)``): a record may open a new sector
only if more than ``reserve`` erased sectors remain, and may use the head sector's room only while
at least ``reserve`` remain (a sector the device opened out of the reserve stays the device's).
Invoices reserve 2, TIME, POWER_UP and EVENT 1, CHECKPOINT 0: a full device can always write the
checkpoint that lets it reclaim (device/archive.py keeps that true when no sector is erased).

Durability: ``append`` programs the record's pages and then syncs the flash once
(device/flash.py ``sync``), before the caller answers. While ``deferred`` is set (SEAL_BATCH,
device/batch.py) appends do not sync; the caller syncs once after the batch's records with
``sync()``, so a batch of K records costs one sync. Records are programmed in order either way:
a power cut before the sync keeps a prefix of them.

RAM kept per record: 4 bytes of request id (``rids``, zeros for non-invoices), searched with
``bytearray.find``; per sector: first and last seq and the prev of its first record, so any live
record's hash is one sector's walk away. The previous hash is not stored in ordinary records, so
the journal keeps the chain itself: ``head_hash``, and ``chain(seq)`` for any live record.
"""

from protocol import cbor, record
from protocol.errors import JournalError
from device.ring import HEAD, MAX_RECORD, TAIL, Ring, align, frame, stored_size


class Journal:
    def __init__(self, flash, start=0, size=None):
        self.ring = Ring(flash, start, size)
        self.flash = flash
        self.run = []          # sectors in ring order: [index, first seq, last seq, prev of first]
        self.skips = {}        # torn bytes: position -> position of the next record
        self.tail = None       # next append position in the head sector (run[-1])
        self.corrupt = None
        self.torn = 0
        self.garbage = []      # sectors to erase at power-up (an interrupted erase or torn write)
        self.head_hash = record.genesis()
        self.last_seq = 0
        self.first_live = 1
        self.archived = None   # [S, H] of the newest CHECKPOINT carrying one
        self.checkpoint = 0    # seq of the newest CHECKPOINT
        self.anchor = None     # (seq, position, prev) of first_live inside an older sector
        self.rids = bytearray()
        self.profile_hash = None   # marks kept by note()
        self.credit_root = None
        self.closed = {}
        self.deferred = False  # set while a SEAL_BATCH programs its records: one sync at its end
        self.unsynced = 0      # records programmed since the last sync
        from device import recovery   # power-up only: a board drops it after (device/core.py)
        recovery.scan(self)

    # -- finding records -------------------------------------------------------------------
    def entry_index(self, seq):
        lo, hi = 0, len(self.run) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.run[mid][1] <= seq:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def next_position(self, pos):
        """Position of the record after the one at ``pos`` in the same sector."""
        nxt = align(pos + HEAD + self.ring.length_at(pos) + TAIL)
        return self.skips.get(nxt, nxt)

    def position(self, seq):
        entry = self.run[self.entry_index(seq)]
        pos, s = self.ring.base(entry[0]), entry[1]
        while s < seq:
            pos = self.next_position(pos)
            s += 1
        return pos

    @property
    def last(self):
        """The newest record as stored, or None on an empty journal. Read from flash when asked
        (the power-up asks): RAM keeps no copy of up to MAX_RECORD bytes between requests."""
        return self.read(self.last_seq) if self.last_seq else None

    def first_seq(self):
        return self.run[0][1] if self.run else 0

    def read(self, seq):
        """Record ``seq`` as stored (body || signature), or None when it is not on flash."""
        if not self.run or seq < self.run[0][1] or seq > self.last_seq:
            return None
        return self.ring.parse(self.position(seq))[0]

    def records(self, first=1):
        """Yield (seq, record) from ``first`` (or the oldest record on flash) to the head."""
        if not self.run:
            return
        seq = max(first, self.run[0][1])
        if seq > self.last_seq:
            return
        k, pos = self.entry_index(seq), self.position(seq)
        while seq <= self.last_seq:
            yield seq, self.ring.parse(pos)[0]
            if seq == self.run[k][2]:
                k += 1
                if k < len(self.run):
                    pos = self.ring.base(self.run[k][0])
            else:
                pos = self.next_position(pos)
            seq += 1

    def chain(self, seq):
        """(prev, record hash, record) of live record ``seq``: a walk inside its sector."""
        entry = self.run[self.entry_index(seq)]
        a = self.anchor
        if a is not None and entry[1] <= a[0] <= seq and self.ring.sector_of(a[1]) == entry[0]:
            s, pos, prev = a
        elif entry[3] is not None:
            s, pos, prev = entry[1], self.ring.base(entry[0]), entry[3]
        else:
            raise JournalError("JOURNAL_CORRUPT", "record %d has no anchored previous hash" % seq)
        while True:
            payload = self.ring.parse(pos)[0]
            h = record.record_hash(prev, payload)
            if s == seq:
                return prev, h, payload
            prev, pos, s = h, self.next_position(pos), s + 1

    def find_request(self, request_id):
        """Seq of the live invoice record carrying ``request_id``, or None. The 4-byte index
        narrows the search; a hit is confirmed from flash."""
        prefix = bytes(request_id[:4])
        i = self.rids.find(prefix)
        while i >= 0:
            if i % 4 == 0:
                seq = self.first_live + i // 4
                payload = self.read(seq)
                if payload is not None and payload[1] == 0 and payload[3:19] == request_id:
                    return seq
            i = self.rids.find(prefix, i + 1)
        return None

    # -- space -----------------------------------------------------------------------------
    def erased_count(self):
        return self.ring.n - len(self.run) - len(self.garbage)

    def head_room(self):
        return self.ring.base(self.run[-1][0] + 1) - self.tail if self.run else 0

    def room(self, reserve):
        """Bytes a record class that keeps ``reserve`` erased sectors may still use."""
        free = self.erased_count() - reserve
        return 0 if free < 0 else self.head_room() + free * self.ring.sector

    def fits(self, sizes, reserve):
        """Whether records of these stored sizes, appended in turn, all find room."""
        room, free = self.head_room(), self.erased_count() - reserve
        if free < 0:
            return False
        for size in sizes:
            if size <= room:
                room -= size
            elif free > 0:
                free -= 1
                room = self.ring.sector - size
            else:
                return False
        return True

    def used(self):
        return self.capacity() - self.room(0)

    def capacity(self):
        return self.ring.n * self.ring.sector

    # -- writing ---------------------------------------------------------------------------
    def append(self, payload, reserve):
        """Program one record (the next seq). A flash failure leaves the journal as if nothing
        was written, unless the record landed in full: then it counts as written."""
        if self.corrupt is not None:
            raise JournalError("JOURNAL_CORRUPT", "journal is damaged at offset %d; export it and call support"
                               % self.corrupt)
        if len(payload) > MAX_RECORD:
            raise JournalError("STORAGE_FAILURE", "record of %d bytes exceeds %d" % (len(payload), MAX_RECORD))
        data = frame(payload)
        fresh = None
        erased = self.erased_count()
        if erased >= reserve and self.run and self.tail + len(data) <= self.ring.base(self.run[-1][0] + 1):
            pos = self.tail
        elif erased > reserve:
            fresh = (self.run[-1][0] + 1) % self.ring.n if self.run else 0
            pos = self.ring.base(fresh)
        else:
            raise JournalError("JOURNAL_FULL", "journal has no room for a %d-byte record (%d bytes left, "
                               "%d erased sectors, %d reserved)" % (len(data), self.head_room(),
                                                                    self.erased_count(), reserve))
        self.unsynced += 1
        try:
            self.ring.program(pos, data)
        except JournalError:
            found = self.ring.parse(pos)
            if found is None or found[0] != payload:
                self._torn(pos, len(data), fresh)
                raise
        if not self.deferred:
            self.sync()
        self._accept(pos, payload, fresh)

    def sync(self):
        """Make the records programmed since the last sync durable (one flash sync, or none)."""
        if self.unsynced:
            self.flash.sync()
            self.unsynced = 0

    def _torn(self, pos, length, fresh):
        """After a failed program: a fresh sector is erased again (it holds only the torn bytes);
        inside the head sector the next record goes past them."""
        if fresh is not None:
            self.ring.erase(fresh)
            return
        nxt = align(self.ring.last_used(pos, pos + length))
        if nxt > pos:
            self.skips[pos] = nxt
            self.tail = nxt

    def _accept(self, pos, payload, fresh):
        seq = self.last_seq + 1
        if fresh is not None:
            self.run.append([fresh, seq, seq, self.head_hash])
        else:
            self.run[-1][2] = seq
        self.tail = pos + stored_size(len(payload))
        self.head_hash = record.record_hash(self.head_hash, payload)
        fields = self.note(payload, seq)
        if fields is not None and record.K_ARCHIVED in fields:
            live = self.archived[0] + 1
            self.rids = bytearray(self.rids[(live - self.first_live) * 4:])
            self.first_live = live

    def note(self, payload, seq):
        """Book one record found (recovery) or written: request-id index, last seq, the marks
        below, and for a CHECKPOINT its decoded body (returned; None for other types).

        Marks, so nothing needs a second walk: ``profile_hash`` (the newest ``profile`` EVENT or
        checkpoint), ``credit_root`` (the newest credit invoice or checkpoint; None is the empty
        tree), ``closed`` (kind -> seq of the newest CLOSURE of each kind). Only CHECKPOINT,
        CLOSURE and EVENT bodies are decoded, and an invoice whose body ends in key 18 (credit_root)."""
        rtype = record.type_of(payload)
        self.rids.extend(payload[3:7] if rtype == record.INVOICE else b"\x00\x00\x00\x00")
        self.last_seq = seq
        end = len(payload) - record.SIG_LEN
        if rtype == record.INVOICE:
            if payload[end - 35:end - 32] == b"\x12\x58\x20":
                self.credit_root = cbor.decode(payload[:end]).get(record.K_CREDIT_ROOT, self.credit_root)
            return None
        if rtype < record.CHECKPOINT:
            return None
        fields = cbor.decode(payload[:end])
        if rtype == record.EVENT:
            if fields[record.K_EVENT] == "profile":
                self.profile_hash = fields[record.K_DETAIL][1]
            return None
        if rtype == record.CLOSURE:
            self.closed[fields[record.K_KIND]] = seq
            return None
        self.checkpoint = seq
        self.archived = fields.get(record.K_ARCHIVED, self.archived)
        self.profile_hash = fields.get(record.K_PROFILE, self.profile_hash)
        self.credit_root = fields.get(record.K_CREDIT_ROOT, self.credit_root)
        for entry in fields.get(record.K_CLOSED, ()):
            self.closed[entry[0]] = max(self.closed.get(entry[0], 0), entry[1])
        return fields

    def reclaim(self, upto):
        """Erase, oldest first, every sector whose records are all at or before ``upto`` (never
        the head sector). Returns the number of sectors erased. Never on a damaged journal."""
        if self.corrupt is not None:
            raise JournalError("JOURNAL_CORRUPT", "journal is damaged at offset %d: nothing is erased" % self.corrupt)
        count = 0
        while len(self.run) > 1 and self.run[0][2] <= upto:
            self.ring.erase(self.run[0][0])
            if self.anchor is not None and self.anchor[0] <= self.run[0][2]:
                self.anchor = None
            self.run.pop(0)
            count += 1
        return count

    def resume(self):
        """Power-up: finish an erase a power cut interrupted (garbage at an end of the erased gap,
        then the sectors the newest checkpoint archived). Returns the number of sectors erased."""
        if self.corrupt is not None:
            return 0
        count = 0
        while self.garbage:
            self.ring.erase(self.garbage[0])
            self.garbage.pop(0)
            count += 1
        if self.archived is not None:
            count += self.reclaim(self.archived[0])
        return count
