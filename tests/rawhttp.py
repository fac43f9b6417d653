"""Raw HTTP/1.1 over a unix socket, for requests no polite client sends: arbitrary header bytes,
BOM bodies, broken request lines. Returns what the daemon answered, parsed."""

import http.client
import json
import socket


class _Sock:
    def __init__(self, data):
        self.data = data

    def makefile(self, mode):
        import io
        return io.BytesIO(self.data)


def send(socket_path, data, timeout=10.0):
    """Send ``data`` (bytes, a whole request), read until the daemon closes; (status, headers, body)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(socket_path)
    try:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.close()
    response = http.client.HTTPResponse(_Sock(b"".join(chunks)))
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def request(method, path, body=b"", headers=()):
    """A request's bytes; ``headers`` are (name, value bytes) pairs sent as given. Always closes."""
    lines = [b"%s %s HTTP/1.1" % (method.encode(), path.encode() if isinstance(path, str) else path),
             b"Host: localhost", b"Connection: close"]
    for name, value in headers:
        lines.append(name.encode() + b": " + value)
    if body or method == "POST":
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def envelope(status, headers, body):
    """The error envelope of an answer, checking it is one (JSON, status error, a code)."""
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body[:200])
    doc = json.loads(body)
    assert doc["status"] == "error" and doc["code"], doc
    return doc
