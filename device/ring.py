"""The journal partition as a ring of flash sectors, and the stored form of one record.

Stored layout of one record (PROTOCOL.md section 8), at an offset aligned to ALIGN bytes::

    "JR" | length L (u16 big-endian) | record (L bytes: body || signature) | CRC-32 of length+record (u32 BE)

A record never spans a sector, so every sector can be erased on its own once all its records are
archived, and every non-erased sector starts with a record: recovery finds the ring's logical
start by reading one record per sector. This module knows bytes and sectors only; what the
records mean is device/journal.py's and device/recovery.py's business.
"""

import binascii
import struct

from protocol import cbor, record
from protocol.errors import CborError

MAGIC = b"JR"
ALIGN = 16
HEAD = 4
TAIL = 4
MAX_RECORD = record.MAX_RECORD
SPAN = HEAD + MAX_RECORD + TAIL + ALIGN   # furthest a torn write can reach, plus alignment
MIN_SECTORS = 4                           # two reserved for the device, two for invoices


def align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def stored_size(length):
    """Flash bytes a record of ``length`` bytes occupies, alignment included."""
    return align(HEAD + length + TAIL)


def crc(length_bytes, payload):
    return binascii.crc32(payload, binascii.crc32(length_bytes)) & 0xFFFFFFFF


def frame(payload):
    lb = struct.pack(">H", len(payload))
    return MAGIC + lb + payload + struct.pack(">I", crc(lb, payload))


def seq_of(payload):
    """The seq of a stored record (decodes its body), or None when the body is not a record map."""
    try:
        fields = cbor.decode(payload[:-record.SIG_LEN])
    except CborError:
        return None
    seq = fields.get(record.K_SEQ) if isinstance(fields, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


class Ring:
    def __init__(self, flash, start=0, size=None):
        sector = flash.sector_size
        size = flash.size - start if size is None else size
        if start % sector or size % sector or start + size > flash.size:
            raise ValueError("journal %d+%d must be whole %d-byte sectors of the flash" % (start, size, sector))
        if size // sector < MIN_SECTORS:
            raise ValueError("journal of %d bytes: at least %d sectors of %d bytes" % (size, MIN_SECTORS, sector))
        self.flash = flash
        self.start = start
        self.sector = sector
        self.n = size // sector

    def base(self, i):
        return self.start + i * self.sector

    def sector_of(self, pos):
        return (pos - self.start) // self.sector

    def end_of(self, pos):
        """End offset of the sector holding ``pos``."""
        return self.base(self.sector_of(pos) + 1)

    def length_at(self, pos):
        """The length field of the record stored at ``pos`` (trusted: already validated)."""
        return struct.unpack(">H", self.flash.read(pos + 2, 2))[0]

    def parse(self, pos):
        """(record bytes, next position) for a valid record at ``pos`` inside its sector, else None."""
        end = self.end_of(pos)
        if pos + HEAD + TAIL > end:
            return None
        head = self.flash.read(pos, HEAD)
        if head[:2] != MAGIC:
            return None
        length = struct.unpack(">H", head[2:4])[0]
        if length <= record.SIG_LEN or length > MAX_RECORD or pos + HEAD + length + TAIL > end:
            return None
        rest = self.flash.read(pos + HEAD, length + TAIL)
        payload = rest[:length]
        if struct.unpack(">I", rest[length:])[0] != crc(head[2:4], payload):
            return None
        return payload, align(pos + HEAD + length + TAIL)

    def erased(self, start, stop):
        pos = start
        while pos < stop:
            n = min(256, stop - pos)
            if self.flash.read(pos, n) != b"\xff" * n:
                return False
            pos += n
        return True

    def last_used(self, start, stop):
        """Offset just past the last non-erased byte in [start, stop), or ``start``."""
        last = stop - 1
        while last >= start and self.flash.read(last, 1) == b"\xff":
            last -= 1
        return last + 1

    def program(self, pos, data):
        """Program ``data`` at ``pos`` in pieces that never cross a flash page."""
        page = self.flash.page_size
        done = 0
        while done < len(data):
            room = page - (pos + done) % page
            chunk = data[done:done + room]
            self.flash.program(pos + done, chunk)
            done += len(chunk)

    def erase(self, i):
        self.flash.erase(self.base(i))
