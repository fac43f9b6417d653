"""The journal's flash on a board: a raw partition or block device behind device/flash.py's rules.

MicroPython exposes raw flash through the *extended* block-device protocol that littlefs uses
(docs.micropython.org "Filesystems and storage", "Custom block devices"):

- ``readblocks(block, buf, offset)`` reads ``len(buf)`` bytes from ``block * size + offset``;
- ``writeblocks(block, buf, offset)`` with an offset programs without erasing (NOR: clears bits);
- ``ioctl(4, 0)`` block count, ``ioctl(5, 0)`` block size, ``ioctl(6, block)`` erases a block.

``rp2.Flash()`` (optionally ``start=``/``len=`` on a custom build that leaves room next to the
filesystem) and ``esp32.Partition`` (a data partition labelled ``fiscal``) implement it, and so
does :class:`FileBlockDevice` below, a preallocated file for stock firmware whose whole flash
belongs to littlefs. :class:`BlockFlash` subclasses :class:`device.flash.Flash`, so the page
boundary and "erase before setting a bit" rules the emulator enforces are enforced on the board
too, by the same code (the fault injection as well, which the board never arms).
"""

from protocol.errors import JournalError
from device.flash import Flash

IOCTL_BLOCK_COUNT = 4
IOCTL_BLOCK_SIZE = 5
IOCTL_BLOCK_ERASE = 6


class BlockFlash(Flash):
    def __init__(self, bdev, page_size=256):
        block = bdev.ioctl(IOCTL_BLOCK_SIZE, 0)
        count = bdev.ioctl(IOCTL_BLOCK_COUNT, 0)
        if not block or not count:
            raise ValueError("block device reports %r blocks of %r bytes" % (count, block))
        self._bdev = bdev
        self._block = block
        self._geometry(block * count, page_size, block)

    # A driver's OSError becomes STORAGE_FAILURE, the journal's typed refusal: nothing sealed.
    def _fetch(self, offset, length):
        buf = bytearray(length)
        if length:
            try:
                self._bdev.readblocks(offset // self._block, buf, offset % self._block)
            except OSError as exc:
                raise JournalError("STORAGE_FAILURE", "flash read at %d failed: %s" % (offset, exc))
        return bytes(buf)

    def _store(self, offset, data):
        try:
            self._bdev.writeblocks(offset // self._block, data, offset % self._block)
        except OSError as exc:
            raise JournalError("STORAGE_FAILURE", "flash program at %d failed: %s" % (offset, exc))

    def _wipe(self, offset):
        try:
            self._bdev.ioctl(IOCTL_BLOCK_ERASE, offset // self._block)
        except OSError as exc:
            raise JournalError("STORAGE_FAILURE", "flash erase at %d failed: %s" % (offset, exc))


class FileBlockDevice:
    """A block device in one preallocated file: for stock firmware, where littlefs owns all flash.

    Programs AND into the stored bytes (what NOR does, and what BlockFlash has checked is
    harmless); erase writes 0xFF. littlefs commits each write copy-on-write, so a power cut leaves
    either the old or the new bytes of that write; the journal's torn-tail recovery covers the rest.
    A board meant for production uses a raw partition instead (README "Boards").
    """

    def __init__(self, path, size, block_size=4096):
        if size % block_size:
            raise ValueError("size must be whole blocks of %d bytes" % block_size)
        self.path = path
        self.size = size
        self.block_size = block_size
        try:
            fh = open(path, "r+b")
        except OSError:
            fh = self._create(path, size, block_size)
        fh.seek(0, 2)
        if fh.tell() != size:
            fh.close()
            raise ValueError("%s is %d bytes, expected %d" % (path, fh.tell(), size))
        self._fh = fh

    @staticmethod
    def _create(path, size, block_size):
        fh = open(path, "w+b")
        blank = b"\xff" * block_size
        for _ in range(size // block_size):
            fh.write(blank)
        fh.flush()
        return fh

    def readblocks(self, block, buf, offset=0):
        self._fh.seek(block * self.block_size + offset)
        self._fh.readinto(buf)

    def writeblocks(self, block, buf, offset=None):
        at = block * self.block_size + (offset or 0)
        if offset is None:   # the plain protocol: erase the blocks, then write them whole
            self._fh.seek(at)
            self._fh.write(buf)
        else:
            self._fh.seek(at)
            old = self._fh.read(len(buf))
            self._fh.seek(at)
            self._fh.write(bytes([old[i] & buf[i] for i in range(len(buf))]))
        self._fh.flush()

    def ioctl(self, op, arg):
        if op == IOCTL_BLOCK_COUNT:
            return self.size // self.block_size
        if op == IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == IOCTL_BLOCK_ERASE:
            self._fh.seek(arg * self.block_size)
            self._fh.write(b"\xff" * self.block_size)
            self._fh.flush()
            return 0
        return 0

    def close(self):
        self._fh.close()
