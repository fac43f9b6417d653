"""systemd integration without libsystemd: readiness notification and socket activation.

Both protocols are a few lines of socket code, so they are spoken here directly (as nobodd does):

- **sd_notify(3)**: ``$NOTIFY_SOCKET`` names an AF_UNIX datagram socket (a path, or ``@name`` in
  the abstract namespace). Each notification is one datagram of newline-separated ``KEY=VALUE``
  assignments: ``READY=1`` (with ``Type=notify`` the start job completes only then; the daemon
  sends it once the device handshake is done), ``STATUS=...`` (one line shown by ``systemctl
  status``), ``STOPPING=1``, ``RELOADING=1`` and ``WATCHDOG=1``. With ``WatchdogSec=`` set,
  systemd passes ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``) and kills a service that does not ping
  within it; sd_watchdog_enabled(3) recommends pinging at half that interval.
- **sd_listen_fds(3)**: with socket activation, the sockets of ``fiscal.socket`` arrive as file
  descriptors 3, 4, ... (``SD_LISTEN_FDS_START``), ``$LISTEN_FDS`` says how many and
  ``$LISTEN_PID`` must be our pid (otherwise they were meant for another process and are not
  ours). The variables are removed once read, so the emulator or any other child never takes
  them for its own, and the descriptors are made close-on-exec as sd_listen_fds does.

Nothing here runs at import; without systemd every call is a no-op.
"""

import os
import socket

from hostd.errors import ConfigError

LISTEN_FDS_START = 3


class Notifier:
    """sd_notify over ``$NOTIFY_SOCKET``; silent when there is none."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        address = environ.pop("NOTIFY_SOCKET", None)
        self.sock = None
        self.address = None
        if address and address[0] in "/@" and len(address) > 1:
            self.address = "\0" + address[1:] if address[0] == "@" else address
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.watchdog_usec = _watchdog_usec(environ)
        environ.pop("WATCHDOG_USEC", None)
        environ.pop("WATCHDOG_PID", None)

    @property
    def enabled(self):
        return self.sock is not None

    def notify(self, *assignments):
        """Send one datagram of ``KEY=VALUE`` lines; False when there is nobody to tell."""
        if self.sock is None:
            return False
        text = "\n".join(a.replace("\n", " ") for a in assignments)
        self.sock.sendto(text.encode("utf-8", "replace"), self.address)
        return True

    def ready(self, status):
        return self.notify("READY=1", "STATUS=" + status)

    def status(self, status):
        return self.notify("STATUS=" + status)

    def stopping(self, status="stopping"):
        return self.notify("STOPPING=1", "STATUS=" + status)

    def ping(self):
        return self.notify("WATCHDOG=1")

    def watchdog_interval(self):
        """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None without a watchdog."""
        if self.watchdog_usec is None or self.sock is None:
            return None
        return self.watchdog_usec / 2e6

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _watchdog_usec(environ):
    text = environ.get("WATCHDOG_USEC")
    if not text:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None   # the watchdog is some other process's
    try:
        usec = int(text)
    except ValueError:
        raise ConfigError("WATCHDOG_USEC must be a number of microseconds, not %r" % text, field="WATCHDOG_USEC")
    return usec if usec > 0 else None


def listen_fds(environ=None):
    """The listening sockets systemd passed us (socket objects, in the order of fiscal.socket);
    an empty list without socket activation. Clears the variables either way."""
    environ = os.environ if environ is None else environ
    pid, count = environ.pop("LISTEN_PID", None), environ.pop("LISTEN_FDS", None)
    environ.pop("LISTEN_FDNAMES", None)
    if pid is None or count is None:
        return []
    if pid != str(os.getpid()):
        return []   # sd_listen_fds(3): passed to another process (a parent that exec'd us did not clear them)
    try:
        n = int(count)
    except ValueError:
        raise ConfigError("LISTEN_FDS must be a number, not %r" % count, field="LISTEN_FDS")
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + n):
        os.set_inheritable(fd, False)
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ConfigError("file descriptor %d from systemd is not a socket (%s)" % (fd, exc), field="LISTEN_FDS")
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ConfigError("file descriptor %d from systemd is not a listening stream socket: use "
                              "ListenStream= in fiscal.socket" % fd, field="LISTEN_FDS")
        sock.setblocking(False)
        sockets.append(sock)
    return sockets
