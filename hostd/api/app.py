"""The POS API application: HTTP/1.1 + JSON (aiohttp), the endpoints of seeds 002 and 001 plus the
two-phase flow, one module per resource (hostd/api/invoices.py, outlets.py, audit.py).

Handlers validate on the host first (hostd/intake/canonical.py, the device checks again), then hand
the device work to the owner thread and await it, so slow or broken clients never hold the device.
Errors use the seed's envelope ``{status, code, detail, field?, retry_after?}`` and HTTP codes;
this module is the one place where exceptions become that envelope.
"""

import asyncio
import hmac
import sqlite3
import sys
import traceback

from aiohttp import web

from hostd.api.audit import Audit
from hostd.api.batch import Batch
from hostd.api.connectors import Connectors
from hostd.api.exports import Exports
from hostd.api.invoices import Invoices
from hostd.api.limits import BODY_TIMEOUT, MAX_BATCH_BODY, MAX_BODY, MAX_QUEUE
from hostd.api.outlets import Outlets
from hostd.api.pages import Pages
from hostd.api.receipts import Receipts
from hostd.api.webhooks import Webhooks
from hostd.api.replies import Refusal, error_response
from hostd.books import envelope
from hostd.errors import HostdError, PayloadTooLarge, RequestTimeout, StoreUnavailable



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
        traceback.print_exc(file=sys.stderr)
        return error_response("INTERNAL_ERROR", "internal error while handling %s %s; see the daemon log"
                              % (request.method, request.path))


class Api:
    """What every resource shares: the owner, the store, authorisation and the device queue."""

    def __init__(self, owner, store, token=None, outlet=None, merchant=None, accounts=None):
        self.owner = owner
        self.store = store
        self.token = token
        self.outlet = outlet
        self.merchant = merchant   # hostd/intake/merchant.py: fields a payload may leave out
        self.accounts = accounts   # hostd/books/accounting.py: account codes of the accounting export
        self.queued = 0

    def app(self, extra_middlewares=()):
        app = web.Application(client_max_size=MAX_BATCH_BODY,
                              middlewares=[errors_middleware] + list(extra_middlewares))
        # Batch before Invoices: /invoices/batch must not be taken for /invoices/{fiscal_number}
        for resource in (Batch(self), Invoices(self), Receipts(self), Connectors(self), Exports(self), Webhooks(self),
                         Outlets(self), Audit(self), Pages(self)):
            app.add_routes(resource.routes())
        return app

    def authorise(self, request):
        if self.token is None:
            return
        given = request.headers.get("Authorization", "")
        # aiohttp hands undecodable header bytes over as surrogate escapes: compare bytes, never fail
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), ("Bearer " + self.token).encode()):
            raise Refusal("UNAUTHORIZED", "missing or invalid bearer token", field="Authorization")

    async def body(self, request, limit=MAX_BODY):
        """The whole request body: 413 past ``limit`` bytes (decided from Content-Length before
        reading when it is sent), RequestTimeout (408) when it does not arrive in time."""
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge("request body of %d bytes exceeds %d" % (request.content_length, limit))
        try:
            data = await asyncio.wait_for(request.read(), BODY_TIMEOUT)
        except asyncio.TimeoutError:
            raise RequestTimeout("the request body did not arrive within %.0f s" % BODY_TIMEOUT)
        if len(data) > limit:
            raise PayloadTooLarge("request body exceeds %d bytes" % limit)
        return data

    async def device(self, fn, *args):
        """Run device work on the owner thread; refuse with 429 when the queue is full."""
        if self.queued >= MAX_QUEUE:
            raise Refusal("RATE_LIMIT_EXCEEDED", "%d requests are waiting for the device" % self.queued, retry=1)
        self.queued += 1
        try:
            return await asyncio.wrap_future(self.owner.run(fn, *args))
        finally:
            self.queued -= 1
