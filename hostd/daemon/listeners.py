"""The daemon's listening sockets: the unix socket (bound by us, or inherited from systemd) and the
optional TCP listener for browser-based POS.

**The unix socket is never stolen** (issue 13). Before binding, an existing path is probed: we
connect and send a request. A daemon that answers (or anything that accepts the connection) keeps
its socket and we refuse; only a socket nobody listens on (``ECONNREFUSED``: its daemon was
killed) is replaced, and a path that is not a socket is never touched. At exit the socket file is
removed, but only if it is still the one we bound (same inode). ``bind`` itself fails on an
existing path, so a daemon starting between our probe and our bind is refused, not replaced.

**TCP** (``--listen HOST:PORT``): loopback addresses only, unless ``--allow-remote`` is given
with a TLS certificate and key, so a token never crosses a network in clear. A certificate also
turns TLS on for a loopback listener. The address must be an IP literal (or ``localhost``) so the
loopback check is about the address actually bound, not about a name that may resolve elsewhere.

Every listener is served through the same GuardedSite and Connections (hostd/daemon/connections.py):
header timeout, connection cap, quiet accept errors, parser errors in the envelope.
"""

import errno
import grp
import ipaddress
import logging
import os
import socket
import ssl
import stat

from hostd.daemon.connections import BACKLOG
from hostd.errors import AlreadyServing, ConfigError

log = logging.getLogger("fiscal.daemon")
PROBE_TIMEOUT = 2.0
PROBE_REQUEST = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def probe(path):
    """Refuse (AlreadyServing) if something serves ``path``; unlink it if it is a stale socket."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "absent"
    if not stat.S_ISSOCK(info.st_mode):
        raise AlreadyServing("%s exists and is not a socket; refusing to replace it (remove it or choose "
                             "another --socket)" % path, field="--socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(PROBE_TIMEOUT)
    try:
        sock.connect(path)
    except ConnectionRefusedError:
        sock.close()
        os.unlink(path)   # nobody listens: the socket of a daemon that was killed
        log.info("replaced the stale socket %s (nobody listened on it)", path)
        return "stale"
    except FileNotFoundError:
        sock.close()
        return "absent"
    except OSError as exc:
        sock.close()
        raise AlreadyServing("cannot probe the existing socket %s (%s); refusing to replace it"
                             % (path, exc.strerror or exc), field="--socket")
    try:
        sock.sendall(PROBE_REQUEST)
        answer = sock.recv(64)
    except OSError as exc:
        answer = ("(no answer: %s)" % (exc.strerror or exc)).encode()
    finally:
        sock.close()
    what = "a fiscal daemon" if answer.startswith(b"HTTP/") else "a process"
    raise AlreadyServing("%s already serves %s; refusing to take its socket (stop it first, or choose another "
                         "--socket)" % (what, path), field="--socket")


class UnixListener:
    """The unix socket we bind ourselves: probed, bound with ``mode`` and ``group``, removed at exit."""

    def __init__(self, path, mode=0o660, group=None):
        self.path = path
        self.mode = mode
        self.group = group
        self.inode = None

    def open(self):
        gid = None
        if self.group is not None:
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise ConfigError("there is no group %s (create it with `groupadd --system %s`, or name an "
                                  "existing group)" % (self.group, self.group), field="--group")
        probe(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise AlreadyServing("%s was created by another process while this daemon started; refusing "
                                     "to take it" % self.path, field="--socket")
            raise
        self.inode = os.stat(self.path).st_ino
        os.chmod(self.path, self.mode)
        if gid is not None:
            os.chown(self.path, -1, gid)
        sock.listen(BACKLOG)
        sock.setblocking(False)
        return sock

    def remove(self):
        """Unlink the socket file if it is still ours (never another daemon's)."""
        if self.inode is None:
            return
        try:
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.inode = None


def parse_address(text):
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (ip text, port); ConfigError naming --listen."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("--listen takes HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8787, not %r"
                          % text, field="--listen")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError("--listen needs an IP address (127.0.0.1, [::1], or with --allow-remote the address "
                          "of an interface), not %r" % host, field="--listen")
    return host, int(port)


def is_loopback(host):
    return ipaddress.ip_address(host).is_loopback


def check_remote(host, allow_remote, tls):
    """The TCP rule: loopback, or --allow-remote with TLS."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise ConfigError("refusing to listen on %s: it is not a loopback address. Remote POS need "
                          "--allow-remote with --tls-cert and --tls-key" % host, field="--listen")
    if tls is None:
        raise ConfigError("--allow-remote needs TLS: give --tls-cert and --tls-key (a bearer token must not "
                          "cross a network in clear)", field="--tls-cert")


def tls_context(cert, key):
    """A server TLS context (TLS 1.2 or later) from PEM files, or None when neither is given."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("TLS needs both --tls-cert and --tls-key", field="--tls-cert" if cert is None else "--tls-key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("cannot load the TLS certificate %s and key %s: %s" % (cert, key, exc), field="--tls-cert")
    return context


def tcp_listener(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError("cannot listen on %s:%d: %s" % (host, port, exc.strerror or exc), field="--listen")
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def describe(sock):
    """``unix:/run/fiscal/api.sock`` or ``tcp:127.0.0.1:8787`` for logs and site names."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return "unix:%s" % (name if isinstance(name, str) else name.decode("utf-8", "replace"))
    return "tcp:%s:%d" % (("[%s]" % name[0]) if sock.family == socket.AF_INET6 else name[0], name[1])
