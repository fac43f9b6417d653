"""Connection hygiene for the daemon's HTTP listener (issue 8).

What a real listener meets, and what this module does about each:

- **Idle and half-sent requests** (slowloris): aiohttp closes a connection that has not sent a
  complete request within ``keepalive_timeout`` of connecting or of its last answer; the daemon
  sets it to ``HEADER_TIMEOUT``. Body reads have their own timeout (hostd/api/app.py).
- **Running out of file descriptors**: every connection is one fd. At most ``cap`` are kept (the
  soft ``RLIMIT_NOFILE``, raised to the hard limit at start, minus ``FD_RESERVE`` for the store,
  the device port and logs, minus four ``BACKLOG``s: asyncio accepts up to a backlog of
  connections in one loop tick before any of them reaches the protocol factory, and an evicted
  connection's fd is only released a tick or two later, while more bursts may be accepted). A new connection beyond the cap evicts the oldest connection
  that has no request in progress, so idle sockets can never lock out a POS that has something
  to say.
- **accept() errors**: asyncio logs "socket.accept() out of system resource" with a traceback up
  to ``backlog`` times per loop tick when fds run out (CPython's accept loop does not stop at the
  first EMFILE). The loop's exception handler here logs such errors once a second at most, with a
  count of those suppressed.
- **aiohttp's own parser errors** (a bad request line, an over-long header) come back as
  ``text/plain``; ``GuardedHandler`` answers them with the seed's error envelope instead.
"""

import asyncio
import logging
import resource
import socket
import time

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from hostd.books import envelope

HEADER_TIMEOUT = 10.0
FD_RESERVE = 64
BACKLOG = 32
MAX_LINE = 8190
MAX_FIELD = 8190
MAX_HEADERS = 64
log = logging.getLogger("fiscal.daemon")


def connection_cap():
    """How many connections the listener may hold (see the module docstring)."""
    return max(16, raise_fd_limit() - FD_RESERVE - 4 * BACKLOG)


def raise_fd_limit():
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit above %d: %s", soft, exc)
    return soft


class GuardedHandler(RequestHandler):
    """aiohttp's request handler, answering its parser's errors with the error envelope."""

    def handle_error(self, request, status=500, exc=None, message=None):
        if request.writer.output_size > 0:   # as aiohttp: an answer has begun, nothing else can be sent
            raise ConnectionError("response already started; cannot send the error envelope")
        if status >= 500:
            log.error("HTTP layer error %s: %r", status, exc)
            code, detail = "INTERNAL_ERROR", "internal error in the HTTP layer; see the daemon log"
        else:
            code = "INVALID_REQUEST" if status != 413 else "PAYLOAD_TOO_LARGE"
            text = str(getattr(exc, "message", None) or message or "bad request")
            detail = "malformed HTTP request: %s" % text.strip().splitlines()[0]
        body = envelope.error_body(code, detail)
        response = web.Response(status=status, body=body, content_type="application/json")
        response.force_close()
        return response


class Connections:
    """The protocol factory of the listening socket: counts connections and evicts idle ones."""

    def __init__(self, cap):
        self.server = None    # the runner's aiohttp Server, once the runner is set up
        self.cap = cap
        self.busy = {}        # handler -> requests in progress on it
        self.evicted = 0

    def __call__(self):
        # Oldest first (insertion order). A handler stays listed for a tick or two after it closed
        # (transport None): it counts no more, and is never chosen twice.
        live = [h for h in self.server.connections if h.transport is not None]
        if len(live) >= self.cap:
            for handler in live:
                if not self.busy.get(handler):
                    handler.force_close()
                    self.evicted += 1
                    break
        return GuardedHandler(self.server, loop=asyncio.get_running_loop(), **self.server._kwargs)

    @web.middleware
    async def middleware(self, request, handler):
        """Marks a connection busy while one of its requests is handled (never evicted then)."""
        proto = request.protocol
        self.busy[proto] = self.busy.get(proto, 0) + 1
        try:
            return await handler(request)
        finally:
            left = self.busy[proto] - 1
            if left:
                self.busy[proto] = left
            else:
                del self.busy[proto]


class QuietAcceptErrors:
    """A loop exception handler that logs each kind of accept() failure at most once a second."""

    def __init__(self, loop, interval=1.0):
        self.loop = loop
        self.interval = interval
        self.last = {}
        self.suppressed = {}

    def __call__(self, loop, context):
        message = context.get("message", "")
        if "accept" not in message:
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self.last.get(message, 0.0) < self.interval:
            self.suppressed[message] = self.suppressed.get(message, 0) + 1
            return
        self.last[message] = now
        extra = self.suppressed.pop(message, 0)
        log.warning("%s: %s%s", message, context.get("exception"),
                    " (%d more in the last second)" % extra if extra else "")


class GuardedSite(web.BaseSite):
    """Serve ``runner`` on an already bound listening socket (unix or TCP, ours or systemd's)
    through ``connections``; with ``ssl_context``, TLS on it."""

    def __init__(self, runner, sock, connections, backlog=BACKLOG, ssl_context=None):
        web.BaseSite.__init__(self, runner, backlog=backlog, ssl_context=ssl_context)
        self._sock = sock
        self.connections = connections

    @property
    def name(self):
        return "%s:%s" % ("unix" if self._sock.family == socket.AF_UNIX else "tcp", self._sock.getsockname())

    async def start(self):
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self.connections.server = self._runner.server
        self._server = await loop.create_server(self.connections, sock=self._sock, backlog=self._backlog,
                                                ssl=self._ssl_context)
