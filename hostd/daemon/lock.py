"""The state directory and the store's lock: one daemon per store.

Two daemons on one SQLite store would both reconcile the journal and file invoices, each
believing it is the device's only owner (DESIGN-NOTES section 6). So the daemon holds an
exclusive ``flock(2)`` on ``fiscal.lock`` in the store's directory for as long as it runs. The
kernel releases a flock when its holder dies, ``kill -9`` included, so a lock is never stale and
there is nothing to clean up; the pid written into the file only serves the refusal message.

``state_dir()`` is the permanent home of the store when nothing else is said: systemd's
``$STATE_DIRECTORY`` (``StateDirectory=fiscal``, systemd.exec(5)), else ``/var/lib/fiscal`` for
root, else ``$XDG_STATE_HOME/fiscal`` (XDG Base Directory spec: ``~/.local/state``). Never the
runtime directory of the socket, which is cleared at logout and at reboot.
"""

import errno
import fcntl
import os

from hostd.errors import AlreadyServing

LOCK_NAME = "fiscal.lock"


def state_dir(environ=None):
    environ = os.environ if environ is None else environ
    given = environ.get("STATE_DIRECTORY")
    if given:
        return given.split(":")[0]   # systemd lists one path per StateDirectory= entry
    if os.geteuid() == 0:
        return "/var/lib/fiscal"
    base = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "fiscal")


class StoreLock:
    """An exclusive flock on ``DIR/fiscal.lock``, held until ``release`` or the process ends."""

    def __init__(self, directory):
        self.path = os.path.join(directory, LOCK_NAME)
        self.fd = None

    def acquire(self, what):
        """Take the lock, or raise AlreadyServing naming the holder; ``what`` names the store."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise AlreadyServing("another fiscal daemon%s already uses the store %s (it holds %s); stop it "
                                 "first, or give this one its own --db" % (
                                     " (pid %s)" % holder if holder else "", what, self.path), field="--db")
        os.ftruncate(fd, 0)
        os.write(fd, b"%d\n" % os.getpid())
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            os.close(self.fd)   # closing the only descriptor drops the flock
            self.fd = None


def _read_pid(fd):
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return text if text.isdigit() else None
