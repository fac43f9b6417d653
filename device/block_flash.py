"""The journal's flash on a board: a raw partition or block device behind device/flash.py's rules.

MicroPython exposes raw flash through the *extended* block-device protocol that littlefs uses
(docs.micropython.org "Filesystems and storage", "Custom block devices"):

- ``readblocks(block, buf, offset)`` reads ``len(buf)`` bytes from ``block * size + offset``;
- ``writeblocks(block, buf, offset)`` with an offset programs without erasing (NOR: clears bits);
- ``ioctl(4, 0)`` block count, ``ioctl(5, 0)`` block size, ``ioctl(6, block)`` erases a block.

``rp2.Flash()`` (optionally ``start=``/``len=`` on a custom build that leaves room next to the
filesystem) and ``esp32.Partition`` (a data partition labelled ``fiscal``) implement it, and so
does :class:`FileBlockDevice` below, one file per block for stock firmware whose whole flash
belongs to littlefs. :class:`BlockFlash` subclasses :class:`device.flash.Flash`, so the page
boundary and "erase before setting a bit" rules the emulator enforces are enforced on the board
too, by the same code (the fault injection as well, which the board never arms).
"""

import os

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
        """Program whole pages: rp2.Flash hands offset and length to flash_range_program, which
        needs both 256-aligned. 0xFF around ``data`` leaves the other bytes as they are (NOR
        programming only clears bits), and Flash.program never lets ``data`` cross a page."""
        start = offset - offset % self.page_size
        page = bytearray(b"\xff" * self.page_size)
        page[offset - start:offset - start + len(data)] = data
        try:
            self._bdev.writeblocks(start // self._block, page, start % self._block)
        except OSError as exc:
            raise JournalError("STORAGE_FAILURE", "flash program at %d failed: %s" % (offset, exc))

    def _wipe(self, offset):
        try:
            self._bdev.ioctl(IOCTL_BLOCK_ERASE, offset // self._block)
        except OSError as exc:
            raise JournalError("STORAGE_FAILURE", "flash erase at %d failed: %s" % (offset, exc))


class FileBlockDevice:
    """A block device as one file per erase block, for stock firmware where littlefs owns all flash.

    Why not one big file: littlefs stores a file as a backward-linked list of blocks, so a write
    in the middle of a file copies every block from there to its end (littlefs issues #27, #244);
    a 256 KiB journal file would rewrite up to 256 KiB per flash program. One small file per
    block bounds that to one block. A missing file reads as erased (0xFF); erase deletes it;
    a program ANDs into the stored bytes, as NOR does (BlockFlash has checked that is harmless).
    A new block file is written whole to ``NN.new`` and renamed, so a power cut leaves no short
    file. A product uses a raw partition instead (docs/BOARDS.md).
    """

    def __init__(self, directory, size, block_size=4096):
        if size % block_size or size <= 0:
            raise ValueError("size must be whole blocks of %d bytes" % block_size)
        self.directory = directory
        self.size = size
        self.block_size = block_size
        try:
            os.mkdir(directory)
        except OSError:   # it exists; anything else shows at the first read or write
            pass
        # Which blocks have a file: listed once here, then kept up to date by program and erase
        # (this object is the directory's only writer), so no read lists the directory again.
        self._present = set(os.listdir(directory))

    def _path(self, block):
        return "%s/%03d" % (self.directory, block)

    def _open(self, block, mode):
        """The block's file positioned at 0, or None when the block is erased (no file)."""
        if "%03d" % block not in self._present:
            return None
        fh = open(self._path(block), mode)
        fh.seek(0, 2)
        size = fh.tell()
        if size != self.block_size:
            fh.close()
            raise OSError("block file %s holds %d bytes, not %d" % (self._path(block), size, self.block_size))
        return fh

    def readblocks(self, block, buf, offset=0):
        done = 0
        while done < len(buf):
            n = min(len(buf) - done, self.block_size - offset)
            fh = self._open(block, "rb")
            if fh is None:
                buf[done:done + n] = b"\xff" * n
            else:
                with fh:
                    fh.seek(offset)
                    buf[done:done + n] = fh.read(n)
            done += n
            block += 1
            offset = 0

    def writeblocks(self, block, buf, offset=None):
        if offset is None:          # the plain protocol: erase the blocks, then write them whole
            for i in range(len(buf) // self.block_size):
                self.ioctl(IOCTL_BLOCK_ERASE, block + i)
                self.writeblocks(block + i, buf[i * self.block_size:(i + 1) * self.block_size], 0)
            return
        if offset + len(buf) > self.block_size:
            raise OSError("program %d+%d crosses block %d" % (offset, len(buf), block))
        fh = self._open(block, "r+b")
        if fh is None:
            merged = bytearray(b"\xff" * self.block_size)
            merged[offset:offset + len(buf)] = buf
            with open(self._path(block) + ".new", "wb") as new:
                new.write(merged)
            os.rename(self._path(block) + ".new", self._path(block))
            self._present.add("%03d" % block)
            return
        with fh:
            fh.seek(offset)
            old = fh.read(len(buf))
            fh.seek(offset)
            fh.write(bytes([old[i] & buf[i] for i in range(len(buf))]))

    def ioctl(self, op, arg):
        if op == IOCTL_BLOCK_COUNT:
            return self.size // self.block_size
        if op == IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == IOCTL_BLOCK_ERASE and "%03d" % arg in self._present:
            os.remove(self._path(arg))
            self._present.discard("%03d" % arg)
        return 0
