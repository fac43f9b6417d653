"""A minimal POS-side client of the daemon: the standard library's HTTP/1.1 client over AF_UNIX,
or over TCP to the daemon's localhost listener (``base_url``).

Used by the ``fiscal invoice`` and ``fiscal status`` commands, the demo, the SDK
(hostd/sdk/client.py) and the tests; any HTTP client that can dial a unix socket works the same
(``curl --unix-socket``).
"""

import http.client
import json
import socket
from urllib.parse import urlsplit

from hostd.errors import DeviceUnavailable


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30.0):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def connection(target, timeout=30.0):
    """An HTTP connection to ``target``: a unix socket path, or an ``http(s)://host:port`` URL."""
    if "://" not in target:
        return UnixHTTPConnection(target, timeout)
    parts = urlsplit(target)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=timeout)


def request(socket_path, method, path, body=None, headers=None, timeout=30.0):
    """(status, headers dict, raw body bytes). Connection problems are DeviceUnavailable-like.
    ``socket_path`` may also be a base URL (``http://127.0.0.1:8765``)."""
    conn = connection(socket_path, timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise DaemonUnavailable("cannot reach the daemon at %s: %s" % (socket_path, exc))
    finally:
        conn.close()


def call_json(socket_path, method, path, body=None, headers=None, timeout=30.0):
    status, _, data = request(socket_path, method, path, body, headers, timeout)
    return status, json.loads(data)


class DaemonUnavailable(DeviceUnavailable):
    code = "DAEMON_UNAVAILABLE"
