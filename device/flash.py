"""A NOR-flash block device that enforces the physics the journal must survive.

Rules (the same as an SPI NOR chip such as the Pico's GD25Q16C / W25Q16JV):

- erase sets a whole sector to 0xFF; it is the only way to turn a 0 bit back into 1;
- a program can only clear bits, and one program may not cross a page boundary;
- power can drop in the middle of a program: a prefix of the bytes lands, and the byte being
  written when it drops may be half programmed (some of its bits cleared, others not).

The journal code that runs on a board is tested against exactly these rules. Fault injection for
tests and for the emulator's ``--cut-after`` / ``--fail-program`` switches:

- ``cut_after = N``: programs 1..N succeed, program N+1 lands ``cut_bytes`` bytes (plus a half
  byte when ``cut_mask`` is set) and raises :class:`PowerCut`; every later call raises too, until
  :meth:`revive` models the next power-up.
- ``fail_at = N``: program N raises STORAGE_FAILURE after landing ``fail_bytes`` bytes.
- ``cut_sync_after = N``: syncs 1..N succeed; sync N+1 raises :class:`PowerCut` with every
  program before it landed (the cut falls between a record's programs and its sync, so nothing
  was answered yet).
- ``cut_erase_after = N``: erases 1..N succeed; erase N+1 erases only its first
  ``erase_cut_bytes`` bytes (the rest of the sector unchanged) and, when ``erase_garbage`` is a
  byte value, leaves the next 16 bytes at that value (cells caught half-way), then raises
  :class:`PowerCut`. Power can drop during an erase as during a program (ARCHIVED, PROTOCOL.md 8).

Durability: a program may sit in a write-back cache until :meth:`sync`. The journal programs every
page of a record (every record of a SEAL_BATCH) and then syncs once, before the device answers;
so ``sync`` is the one point that makes written records durable. On NOR flash a program is
durable when it returns and ``sync`` does nothing; the emulator's file flash calls fdatasync
there (device/emu_flash.py). A port must keep programs in order across a cut: whatever a cut
before the sync keeps is a prefix of the programs, each possibly torn, exactly what a cut during
a program leaves.

Subclasses persist data by overriding :meth:`_persist` and :meth:`_flush` (see
``device/emu_flash.py``).
"""

from protocol.errors import JournalError, PowerCut


class Flash:
    """The rules and the fault injection; where the bytes live is up to ``_fetch``/``_store``/
    ``_wipe``: a bytearray here, a board's block device in device/block_flash.py."""

    def __init__(self, size, page_size=256, sector_size=4096, data=None):
        self._geometry(size, page_size, sector_size)
        if data is None:
            self._mem = bytearray(b"\xff" * size)
        else:
            if len(data) != size:
                raise ValueError("flash image is %d bytes, expected %d" % (len(data), size))
            self._mem = bytearray(data)

    def _geometry(self, size, page_size, sector_size):
        if size <= 0 or size % sector_size or sector_size % page_size:
            raise ValueError("flash size must be whole sectors of whole pages")
        self.size = size
        self.page_size = page_size
        self.sector_size = sector_size
        self.programs = 0
        self.cut_after = None
        self.cut_bytes = 0
        self.cut_mask = None
        self.fail_at = None
        self.cut_erase_after = None
        self.erase_garbage = None
        self.fail_bytes = 0
        self.erases = 0
        self.syncs = 0
        self.cut_sync_after = None
        self.erase_cut_bytes = 0
        self.erase_garbage = None
        self.dead = False

    def read(self, offset, length):
        self._alive()
        if offset < 0 or length < 0 or offset + length > self.size:
            raise JournalError("STORAGE_FAILURE", "read %d+%d outside flash of %d bytes" % (offset, length, self.size))
        return self._fetch(offset, length)

    def program(self, offset, data):
        """Clear bits so that ``data`` is stored at ``offset`` (within one page)."""
        self._alive()
        n = len(data)
        if n == 0:
            return
        if offset < 0 or offset + n > self.size:
            raise JournalError("STORAGE_FAILURE", "program %d+%d outside flash" % (offset, n))
        if offset // self.page_size != (offset + n - 1) // self.page_size:
            raise JournalError("STORAGE_FAILURE", "program %d+%d crosses a page boundary" % (offset, n))
        current = self._fetch(offset, n)
        if current != b"\xff" * n:   # an erased range takes any data: the usual case, compared at C speed
            for i in range(n):
                if current[i] & data[i] != data[i]:
                    raise JournalError("STORAGE_FAILURE", "program at %d would set bits (erase first)" % (offset + i))
        number = self.programs + 1
        if self.cut_after is not None and number > self.cut_after:
            land = min(self.cut_bytes, n)
            self._land(offset, data, land)
            if self.cut_mask is not None and land < n:
                self._store(offset + land, bytes([data[land] | self.cut_mask]))
            self.dead = True
            raise PowerCut("power cut during program %d at offset %d" % (number, offset))
        if self.fail_at == number:
            self.programs = number
            self._land(offset, data, min(self.fail_bytes, n))
            raise JournalError("STORAGE_FAILURE", "flash program %d failed at offset %d" % (number, offset))
        self._land(offset, data, n)
        self.programs = number

    def sync(self):
        """Make every landed program durable (the write-back cache of the port, if any)."""
        self._alive()
        number = self.syncs + 1
        if self.cut_sync_after is not None and number > self.cut_sync_after:
            self.dead = True
            raise PowerCut("power cut before sync %d" % number)
        self._flush()
        self.syncs = number

    def erase(self, offset):
        """Erase the sector starting at ``offset`` (never called on the commit path)."""
        self._alive()
        if offset % self.sector_size or offset < 0 or offset >= self.size:
            raise JournalError("STORAGE_FAILURE", "erase offset %d is not a sector start" % offset)
        number = self.erases + 1
        if self.cut_erase_after is not None and number > self.cut_erase_after:
            self._cut_erase(offset)
            self.dead = True
            raise PowerCut("power cut during erase %d at offset %d" % (number, offset))
        self._wipe(offset)
        self.erases = number

    def _cut_erase(self, offset):
        """A prefix of the sector erased, the rest as it was, optionally 16 bytes of garbage."""
        keep = self._fetch(offset, self.sector_size)
        land = min(self.erase_cut_bytes, self.sector_size)
        self._wipe(offset)
        tail = bytearray(keep[land:])
        if self.erase_garbage is not None:
            for i in range(min(16, len(tail))):
                tail[i] = self.erase_garbage
        pos = offset + land
        while tail:   # page by page: device/block_flash.py programs one page per call
            n = min(len(tail), self.page_size - pos % self.page_size)
            self._store(pos, bytes(tail[:n]))
            tail = tail[n:]
            pos += n

    def image(self):
        """A copy of the whole flash, e.g. to build a second device from the same state."""
        return self._fetch(0, self.size)

    def revive(self):
        """Power comes back: clear injected faults, keep the data exactly as it was left."""
        self.dead = False
        self.cut_after = None
        self.cut_mask = None
        self.fail_at = None
        self.cut_erase_after = None
        self.erase_garbage = None
        self.cut_sync_after = None

    def _alive(self):
        if self.dead:
            raise PowerCut("flash is unpowered")

    def _land(self, offset, data, count):
        if count:
            self._store(offset, data[:count])

    # -- where the bytes live (overridden by device/block_flash.py) ------------------------------
    def _fetch(self, offset, length):
        return bytes(self._mem[offset:offset + length])

    def _store(self, offset, data):
        """Program: clear bits, as NOR does (the caller checked no bit has to be set). Into an
        erased range that leaves ``data`` itself: one slice copy instead of a loop per byte."""
        n = len(data)
        mem = self._mem
        if mem[offset:offset + n] == b"\xff" * n:
            mem[offset:offset + n] = data
        else:
            for i in range(n):
                mem[offset + i] &= data[i]
        self._persist(offset, n)

    def _wipe(self, offset):
        self._mem[offset:offset + self.sector_size] = b"\xff" * self.sector_size
        self._persist(offset, self.sector_size)

    def _persist(self, offset, length):
        """Hook for durable subclasses; the in-memory flash has nothing to do."""

    def _flush(self):
        """Hook for subclasses with a write-back cache (sync); NOR programs are durable at once."""
