"""Append-only journal on NOR flash: one programmed record decides everything, a torn tail is
never-written.

Stored layout of one record, at an offset aligned to ALIGN bytes::

    "JR" | length L (u16 big-endian) | record (L bytes: body || signature) | CRC-32 of length+record (u32 BE)

Appends only clear bits of erased (0xFF) flash, page by page; nothing is ever erased on the commit
path (the partition is erased once, when the device is made). Recovery walks records from the
start: a record is valid when its magic, length and CRC hold. The first invalid position is either
erased flash (the tail) or a torn write. A torn write covers at most one record's span, so the
scan looks for the next valid record, at an aligned offset inside that span, that chains to the
last good one; if there is none, the next append goes just past the torn bytes. Either way a torn
record counts as never written, and the counter derived from the last valid record is c or c+1.

Recovery reads every record's frame and CRC (cheap, C-speed on a board) but decodes no CBOR except
around a tear, so a board boots in linear time with tiny RAM: a sparse index of every STRIDE-th
record offset is all that is kept.
"""

import binascii
import struct

from protocol import cbor, record
from protocol.errors import CborError, JournalError

MAGIC = b"JR"
ALIGN = 16
HEAD = 4
TAIL = 4
MAX_RECORD = 1024
SPAN = HEAD + MAX_RECORD + TAIL + ALIGN   # furthest a torn write can reach, plus alignment
STRIDE = 16


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _crc(length_bytes, payload):
    return binascii.crc32(payload, binascii.crc32(length_bytes)) & 0xFFFFFFFF


class Journal:
    def __init__(self, flash, start=0, size=None):
        if start % ALIGN:
            raise ValueError("journal start %d must be a multiple of %d" % (start, ALIGN))
        self.flash = flash
        self.start = start
        self.end = start + (flash.size - start if size is None else size)
        self.tail = start
        self.count = 0
        self.last = None
        self.last_invoice = None
        self.index = []
        self.skips = {}
        self.torn = 0
        self.corrupt = None
        self._scan(start)

    # -- reading ---------------------------------------------------------------------------
    def _parse(self, pos):
        """Return (record bytes, next position) for a valid record at ``pos``, else None."""
        if pos + HEAD + TAIL > self.end:
            return None
        head = self.flash.read(pos, HEAD)
        if head[:2] != MAGIC:
            return None
        length = struct.unpack(">H", head[2:4])[0]
        if length <= record.SIG_LEN or length > MAX_RECORD or pos + HEAD + length + TAIL > self.end:
            return None
        rest = self.flash.read(pos + HEAD, length + TAIL)
        payload = rest[:length]
        if struct.unpack(">I", rest[length:])[0] != _crc(head[2:4], payload):
            return None
        return payload, _align(pos + HEAD + length + TAIL)

    def _erased(self, start, stop):
        stop = min(stop, self.end)
        pos = start
        while pos < stop:
            n = min(256, stop - pos)
            if self.flash.read(pos, n) != b"\xff" * n:
                return False
            pos += n
        return True

    def _chains(self, payload):
        """Whether ``payload`` is the record that follows the last valid one."""
        try:
            fields = cbor.decode(payload[:-record.SIG_LEN])
        except CborError:
            return False
        prev = record.genesis() if self.last is None else record.record_hash(
            self.last[:-record.SIG_LEN], self.last[-record.SIG_LEN:])
        return isinstance(fields, dict) and fields.get(record.K_SEQ) == self.count + 1 \
            and fields.get(record.K_PREV) == prev

    def _accept(self, pos, payload):
        if self.count % STRIDE == 0:
            self.index.append(pos)
        self.count += 1
        self.last = payload
        if payload[2] == record.INVOICE:   # canonical body: map head, key 1, then the type
            self.last_invoice = payload

    def _scan(self, pos):
        """Walk valid records from ``pos``; leave ``tail`` where the next append must go.

        At the first invalid position: erased flash is the tail. Otherwise the bytes are either a
        torn write (only ever the last thing written, so nothing but erased flash or our own
        resumed record follows within SPAN) or damage in the middle of the journal (a complete
        record follows that does not chain). Damage sets ``corrupt`` and the device stops writing:
        appending past it could bury sealed records.
        """
        while pos < self.end:
            found = self._parse(pos)
            if found is not None:
                self._accept(pos, found[0])
                pos = found[1]
                continue
            window = min(self.end, pos + SPAN)
            if self._erased(pos, window):
                break
            q = pos + ALIGN
            while q < window and self._parse(q) is None:
                q += ALIGN
            if q < window:
                if not self._chains(self._parse(q)[0]):
                    self.corrupt = pos
                    break
                self.torn += 1
                self.skips[pos] = q
                pos = q
                continue
            if not self._erased(window, window + SPAN):
                self.corrupt = pos
                break
            self.torn += 1
            last = window - 1
            while last >= pos and self.flash.read(last, 1) == b"\xff":
                last -= 1
            self.skips[pos] = _align(last + 1)
            pos = _align(last + 1)
            break
        self.tail = min(pos, self.end)

    def records(self, first=1):
        """Yield (seq, record bytes) from record number ``first`` to the end."""
        if first < 1 or first > self.count:
            return
        k = (first - 1) // STRIDE
        seq = k * STRIDE + 1
        pos = self.index[k]
        while seq <= self.count:
            pos = self.skips.get(pos, pos)
            payload, nxt = self._parse(pos)
            if seq >= first:
                yield seq, payload
            seq += 1
            pos = nxt

    def find(self, needle):
        """Newest record containing ``needle`` as bytes (e.g. a nonce), walking back by stride."""
        k = len(self.index) - 1
        while k >= 0:
            hit = None
            first = k * STRIDE + 1
            for seq, payload in self.records(first):
                if seq >= first + STRIDE:
                    break
                if needle in payload:
                    hit = (seq, payload)
            if hit is not None:
                return hit
            k -= 1
        return None

    # -- writing ---------------------------------------------------------------------------
    def append(self, payload):
        """Program one record. On a flash failure, rescan: the record may or may not have landed."""
        if self.corrupt is not None:
            raise JournalError("JOURNAL_CORRUPT", "journal is damaged at offset %d; export it and call support"
                               % self.corrupt)
        length = len(payload)
        if length > MAX_RECORD:
            raise JournalError("STORAGE_FAILURE", "record of %d bytes exceeds %d" % (length, MAX_RECORD))
        lb = struct.pack(">H", length)
        stored = MAGIC + lb + payload + struct.pack(">I", _crc(lb, payload))
        if self.tail + len(stored) > self.end:
            raise JournalError("JOURNAL_FULL", "journal has %d bytes left, record needs %d"
                               % (self.end - self.tail, len(stored)))
        pos = self.tail
        page = self.flash.page_size
        done = 0
        try:
            while done < len(stored):
                room = page - (pos + done) % page
                chunk = stored[done:done + room]
                self.flash.program(pos + done, chunk)
                done += len(chunk)
        except JournalError:
            self._scan(self.tail)
            raise
        self._accept(pos, payload)
        self.tail = _align(pos + len(stored))

    def used(self):
        return self.tail - self.start

    def capacity(self):
        return self.end - self.start
