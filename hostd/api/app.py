"""The POS API application: HTTP/1.1 + JSON (aiohttp), the endpoints of seeds 002 and 001 plus the
two-phase flow, one module per resource (``RESOURCES``).

Handlers validate on the host first (hostd/intake/canonical.py, the device checks again), then hand
the device work to the owner thread and await it, so slow or broken clients never hold the device.
Errors use the seed's envelope ``{status, code, detail, field?, retry_after?}`` and HTTP codes;
this module is the one place where exceptions become that envelope.
"""

import asyncio
import logging
import sqlite3

from aiohttp import web

from hostd.api.audit import Audit
from hostd.api.auth import CALLER, Tokens, caller_of, check_scope
from hostd.api.batch import Batch
from hostd.api.connectors import Connectors
from hostd.api.cors import Cors
from hostd.api.credits import Credits
from hostd.api.exports import Exports
from hostd.api.health import Health
from hostd.api.invoices import Invoices
from hostd.api.limits import BODY_TIMEOUT, MAX_BATCH_BODY, MAX_BODY, MAX_QUEUE
from hostd.api.openapi import OpenApi
from hostd.api.outlets import Outlets
from hostd.api.pages import Pages
from hostd.api.receipts import Receipts
from hostd.api.replies import Refusal, error_response
from hostd.api.reports import Reports
from hostd.api.sync import Sync
from hostd.api.scripts import Scripts
from hostd.api.webhooks import Webhooks
from hostd.books import envelope
from hostd.errors import HostdError, PayloadTooLarge, RequestTimeout, StoreUnavailable

# Every resource module, in the order their routes are added (Batch before Invoices: the batch
# path must not be taken for a fiscal number); hostd/api/openapi.py describes each route they
# serve (tests/test_openapi.py fails when a route is missing there).
RESOURCES = (Batch, Invoices, Reports, Credits, Receipts, Connectors, Exports, Webhooks, Sync, Outlets, Audit, Health,
             OpenApi, Pages, Scripts)
SCOPE = "fiscal.scope"   # request key: the outlets the request's token may act for
log = logging.getLogger("fiscal.api")
__all__ = ("Api", "MAX_BODY", "MAX_QUEUE", "RESOURCES", "errors_middleware")


@web.middleware
async def errors_middleware(request, handler):
    """The one place where exceptions become the seed's error envelope."""
    try:
        return await handler(request)
    except HostdError as exc:
        status, body, retry = envelope.error_of(exc)
        return web.Response(status=status, body=body, content_type="application/json",
                            headers={"Retry-After": str(retry)} if retry else None)
    except sqlite3.OperationalError as exc:   # disk full, I/O error, locked: retryable, nothing half-done
        exc = StoreUnavailable("the daemon's store cannot be written (%s); retry with the same Idempotency-Key"
                               % exc)
        return error_response(exc.code, exc.detail, retry_after=exc.retry)
    except web.HTTPRequestEntityTooLarge:
        return error_response("PAYLOAD_TOO_LARGE", "request body exceeds %d bytes" % MAX_BATCH_BODY)
    except web.HTTPNotFound:
        return error_response("NOT_FOUND", "no such endpoint: %s %s" % (request.method, request.path))
    except web.HTTPMethodNotAllowed:
        return error_response("NOT_FOUND", "method %s not allowed on %s" % (request.method, request.path))
    except Exception:
        # A bug, not a refusal: log the traceback, answer the envelope, keep serving everyone else.
        log.exception("internal error while handling %s %s", request.method, request.path)
        return error_response("INTERNAL_ERROR", "internal error while handling %s %s; see the daemon log"
                              % (request.method, request.path))


class Api:
    """What every resource shares: the owner, the store, authorisation and the device queue.

    ``tokens`` (hostd/api/auth.py) scopes bearer tokens to outlets; the legacy ``token`` and
    ``outlet`` make the one-line table "token outlet" (or "token *"). ``outlet`` also limits the
    whole daemon to that outlet, token or not. ``tokens`` may be replaced while serving (SIGHUP).
    ``cors_origins``: the origins browsers may call from (hostd/api/cors.py); none by default.
    ``merchant`` (hostd/intake/merchant.py): the fields a payload may leave out; ``accounts``
    (hostd/books/accounting.py): the account codes of the accounting export.
    """

    def __init__(self, owner, store, token=None, outlet=None, tokens=None, cors_origins=(), merchant=None,
                 accounts=None, sync=None):
        """``sync``: the sync agent (hostd/daemon/sync.py) when an authority is configured."""
        self.owner = owner
        self.store = store
        self.outlet = outlet
        if tokens is None and token is not None:
            tokens = Tokens.single(token, outlet)
        self.tokens = tokens
        self.cors = Cors(cors_origins)
        self.merchant = merchant
        self.accounts = accounts
        self.sync = sync
        self.closer = None   # the day's close (hostd/daemon/closer.py), set by the daemon
        self.queued = 0

    def app(self, extra_middlewares=()):
        app = web.Application(client_max_size=MAX_BATCH_BODY,
                              middlewares=[self.cors.middleware, errors_middleware] + list(extra_middlewares))
        for resource in RESOURCES:
            app.add_routes(resource(self).routes())
        return app

    def authorise(self, request):
        """401 without a valid token (when tokens are configured); remembers the token's outlets."""
        tokens = self.tokens
        if tokens is None:
            request[SCOPE] = None
            return None
        header = request.headers.get("Authorization", "")
        request[SCOPE] = scope = tokens.scope(header)
        request[CALLER] = caller_of(header, scope)
        return scope

    def authorise_page(self, request):
        """As ``authorise``, for what a browser opens by navigation (the status page, a receipt),
        which cannot send a header: the token may come as ``?token=``. Returns the token used."""
        given = request.query.get("token")
        if given is not None and self.tokens is not None:
            request[SCOPE] = self.tokens.scope("Bearer " + given)
            return given
        self.authorise(request)
        header = request.headers.get("Authorization", "")
        return header[len("Bearer "):] if self.tokens is not None and header.startswith("Bearer ") else None

    def check_outlet(self, request, outlet_id):
        """403 when this daemon (``--outlet``) or the request's token may not act for ``outlet_id``."""
        if self.outlet is not None and outlet_id != self.outlet:
            raise Refusal("FORBIDDEN", "this daemon seals for outlet %s only" % self.outlet, field="outlet_id")
        check_scope(request.get(SCOPE), outlet_id)

    def check_all_outlets(self, request):
        """403 unless the request's token acts for every outlet: a device-wide operation."""
        if request.get(SCOPE) is not None:
            raise Refusal("FORBIDDEN", "this operation concerns the whole device: it needs a token for every "
                          "outlet ('*' in the tokens file)", field="Authorization")

    async def body(self, request, limit=MAX_BODY):
        """The whole request body: 413 past ``limit`` bytes (decided from Content-Length before
        reading when it is sent), RequestTimeout (408) when it does not arrive in time."""
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge("request body of %d bytes exceeds %d" % (request.content_length, limit))
        try:
            if request.content.is_eof():   # the whole body came with the headers: nothing to time
                data = await request.read()
            else:   # 3.11's wait_for runs the read as a task of its own (about 0.05 ms a request, traced)
                data = await asyncio.wait_for(request.read(), BODY_TIMEOUT)
        except asyncio.TimeoutError:
            raise RequestTimeout("the request body did not arrive within %.0f s" % BODY_TIMEOUT)
        if len(data) > limit:
            raise PayloadTooLarge("request body exceeds %d bytes" % limit)
        return data

    async def device(self, fn, *args):
        """Run device work on the owner thread; refuse with 429 when the queue is full."""
        return await self._queued(lambda: self.owner.run(fn, *args))

    async def seal(self, pending, budget):
        """The one-call seal of an accepted request, grouped with the other queued ones by the
        owner (hostd/owner/batching.py): (http status, response bytes)."""
        return await self._queued(lambda: self.owner.seal_grouped(pending, budget))

    async def seal_items(self, pendings, budget):
        """The requests of one batch, sealed in order behind the queued ones (``seal_queued`` in
        hostd/owner/batching.py): [(http status, response bytes)]."""
        return await self._queued(lambda: self.owner.seal_queued(pendings, budget))

    async def _queued(self, submit):
        if self.queued >= MAX_QUEUE:
            raise Refusal("RATE_LIMIT_EXCEEDED", "%d requests are waiting for the device" % self.queued, retry=1)
        self.queued += 1
        try:
            return await asyncio.wrap_future(submit())
        finally:
            self.queued -= 1
