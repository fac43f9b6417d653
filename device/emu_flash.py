"""File-backed NOR flash for the emulator (CPython only): the same rules as device/flash.py, made
durable.

Every landed program is written through to the file with ``pwrite`` and ``fdatasync`` before the
core is told it succeeded, so a ``kill -9`` right after an answer never loses a sealed record. An
fsync error is fatal: after a failed fsync Linux may already have dropped the dirty pages and a
retried fsync can report success ("fsyncgate", reference ecosystem-and-reliability.md B1), so the
process stops instead of carrying on with a journal it cannot trust.
"""

import fcntl
import os
import sys

from device.flash import Flash


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
        self._fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ProfileBusy("%s is in use by another emulator" % path)

    def _persist(self, offset, length):
        try:
            os.pwrite(self._fd, bytes(self._mem[offset:offset + length]), offset)
            os.fdatasync(self._fd)
        except OSError as exc:
            sys.stderr.write("fatal: flash write-through failed (%s); stopping\n" % exc)
            sys.stderr.flush()
            os._exit(74)

    def close(self):
        os.close(self._fd)


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
