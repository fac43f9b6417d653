"""File-backed NOR flash for the emulator (CPython only): the same rules as device/flash.py, made
durable.

Every landed program is written through to the file with ``pwrite`` before the core is told it
succeeded, so a ``kill -9`` of the emulator never loses a programmed byte (the kernel holds it).
``sync`` (called once per record, or once per SEAL_BATCH, before the device answers) is the
``fdatasync`` that makes them survive a host power cut too: one sync per record, not one per
page program (issue 15).

Order across a host power cut: the kernel may write dirty pages back in any order, so writes to
two file pages with no sync between them could land the later one alone, a hole no NOR flash
can leave. Before a program touches another file page than the unsynced ones, this port syncs
first (a barrier), so unsynced writes always sit in one file page, and what a cut keeps is a
prefix of the programs, as on NOR flash (device/flash.py). A record never spans a 4 KiB sector,
so a record of one sector costs one sync, and a batch one more per sector it opens. Erases are
synced at once (rare: ARCHIVED). An fsync error is fatal: after a failed fsync Linux may already have dropped the dirty pages and a
retried fsync can report success ("fsyncgate", reference ecosystem-and-reliability.md B1), so the
process stops instead of carrying on with a journal it cannot trust.
"""

import fcntl
import os
import sys

from device.flash import Flash

FILE_PAGE = 4096   # the kernel's page cache unit: what it may write back on its own, in any order


class FileFlash(Flash):
    def __init__(self, path, size, page_size=256, sector_size=4096):
        if not os.path.exists(path):
            _create_erased(path, size)
        actual = os.path.getsize(path)
        if actual != size:
            raise ValueError("%s holds %d bytes; this profile's flash is %d bytes" % (path, actual, size))
        with open(path, "rb") as fh:
            data = fh.read()
        Flash.__init__(self, size, page_size, sector_size, data)
        self.fsyncs = 0          # fdatasync calls (syncs, barriers and erases): tests count them
        self._dirty = None       # the file page holding unsynced writes, or None
        self._fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ProfileBusy("%s is in use by another emulator" % path)

    def _persist(self, offset, length):
        first, last = offset // FILE_PAGE, (offset + length - 1) // FILE_PAGE
        if self._dirty is not None and (first != self._dirty or last != first):
            self._flush()        # barrier: earlier writes are durable before another page changes
        try:
            os.pwrite(self._fd, bytes(self._mem[offset:offset + length]), offset)
        except OSError as exc:
            _fatal(exc)
        self._dirty = first
        if last != first:
            self._flush()

    def _wipe(self, offset):
        Flash._wipe(self, offset)
        self._flush()            # an erase is durable before anything follows it

    def _flush(self):
        if self._dirty is None:
            return
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            _fatal(exc)
        self.fsyncs += 1
        self._dirty = None

    def close(self):
        self._flush()
        os.close(self._fd)


def _fatal(exc):
    sys.stderr.write("fatal: flash write-through failed (%s); stopping\n" % exc)
    sys.stderr.flush()
    os._exit(74)


class ProfileError(RuntimeError):
    """The profile directory cannot hold a device: the emulator refuses to start, naming why."""


class ProfileBusy(ProfileError):
    """Two emulators on one flash image would fork the journal: the second one refuses to start."""


def _create_erased(path, size):
    """A new, fully erased flash image, made durable (file and directory) before first use.

    On a full (or failing) filesystem the half-written image is removed and ProfileError names
    the cause: a later start must never find a truncated ``flash.bin.new`` (or worse, rename it)."""
    tmp = path + ".new"
    try:
        with open(tmp, "wb") as fh:
            fh.write(b"\xff" * size)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise ProfileError("cannot create the flash image %s (%d bytes): %s" % (path, size, exc.strerror or exc))
