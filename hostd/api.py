"""POS API: HTTP/1.1 + JSON (aiohttp), endpoints of seeds 002 and 001 plus the two-phase flow.

Handlers validate on the host first (hostd/canonical.py, the device checks again), then hand the
device work to the owner thread and await it, so slow or broken clients never hold the device.
Errors use the seed's envelope ``{status, code, detail, field?, retry_after?}`` and HTTP codes.
"""

import asyncio
import hashlib
import hmac
import json
import sys
import time
import traceback
import uuid

from aiohttp import web

from protocol import taxgroups
from hostd import envelope
from hostd.canonical import to_canonical
from hostd.errors import DeviceUnavailable, HostdError, InvalidPayload
from hostd.export import fast_verifier
from hostd.invoices import invoice_view, list_query
from hostd.owner import TWO_PHASE

MAX_BODY = 256 * 1024
MAX_QUEUE = 64
SEAL_BUDGET = 15.0


def _json(status, doc, headers=None):
    return web.Response(status=status, body=envelope.dumps(doc), content_type="application/json", headers=headers)


def _error(code, detail, field=None, retry_after=None, device_code=None):
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    body = envelope.error_body(code, detail, field, retry_after, device_code)
    return web.Response(status=envelope.HTTP_FOR.get(code, 500), body=body, content_type="application/json",
                        headers=headers)


@web.middleware
async def errors_middleware(request, handler):
    """The one place where exceptions become the seed's error envelope."""
    try:
        return await handler(request)
    except HostdError as exc:
        retry = 1 if isinstance(exc, DeviceUnavailable) else getattr(exc, "retry", None)
        return _error(exc.code, exc.detail, exc.field, retry, getattr(exc, "device_code", None))
    except web.HTTPRequestEntityTooLarge:
        return _error("PAYLOAD_TOO_LARGE", "request body exceeds %d bytes" % MAX_BODY)
    except web.HTTPNotFound:
        return _error("NOT_FOUND", "no such endpoint: %s %s" % (request.method, request.path))
    except web.HTTPMethodNotAllowed:
        return _error("NOT_FOUND", "method %s not allowed on %s" % (request.method, request.path))
    except Exception:
        # A bug, not a refusal: log the traceback, answer the envelope, keep serving everyone else.
        traceback.print_exc(file=sys.stderr)
        return _error("INTERNAL_ERROR", "internal error while handling %s %s; see the daemon log"
                      % (request.method, request.path))


class Api:
    def __init__(self, owner, store, token=None, outlet=None):
        self.owner = owner
        self.store = store
        self.token = token
        self.outlet = outlet
        self.queued = 0

    def app(self):
        app = web.Application(client_max_size=MAX_BODY, middlewares=[errors_middleware])
        app.add_routes([
            web.post("/api/v1/invoices", self.create),
            web.post("/api/v1/invoices/prepare", self.prepare),
            web.post("/api/v1/invoices/commit", self.commit),
            web.post("/api/v1/invoices/abort", self.abort),
            web.get("/api/v1/invoices", self.list),
            web.get("/api/v1/invoices/{fiscal_number}", self.get),
            web.get("/api/v1/tax-groups", self.tax_groups),
            web.get("/api/v1/verify/{fiscal_number}", self.verify),
            web.get("/api/v1/outlets/{outlet_id}/status", self.status),
            web.get("/api/v1/audit/export", self.export),
        ])
        return app

    # -- plumbing ---------------------------------------------------------------------------------
    def _authorise(self, request):
        if self.token is None:
            return
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), ("Bearer " + self.token).encode()):
            raise _Refusal("UNAUTHORIZED", "missing or invalid bearer token")

    async def _device(self, fn, *args):
        """Run device work on the owner thread; refuse with 429 when the queue is full."""
        if self.queued >= MAX_QUEUE:
            raise _Refusal("RATE_LIMIT_EXCEEDED", "%d requests are waiting for the device" % self.queued, retry=1)
        self.queued += 1
        try:
            return await asyncio.wrap_future(self.owner.run(fn, *args))
        finally:
            self.queued -= 1

    async def _invoice(self, request):
        self._authorise(request)
        raw = await request.read()
        canonical, _ = to_canonical(raw)
        doc = json.loads(raw)
        if self.outlet is not None and doc["outlet_id"] != self.outlet:
            raise _Refusal("FORBIDDEN", "this daemon seals for outlet %s only" % self.outlet, field="outlet_id")
        return raw, canonical

    def _new_request(self, key, raw, canonical):
        """Insert the request row, or check a retry carries the same body (Idempotency-Key)."""
        body_hash = hashlib.sha256(raw).digest()
        if not self.store.add_request(key, body_hash, canonical, raw.decode(), time.time()):
            if self.store.request(key)["body_hash"] != body_hash:
                raise _Refusal("IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different body")

    # -- endpoints ----------------------------------------------------------------------------------
    async def create(self, request):
        raw, canonical = await self._invoice(request)
        key = "1p:" + request.headers.get("Idempotency-Key", "auto-" + uuid.uuid4().hex)
        self._new_request(key, raw, canonical)
        status, body = await self._device(self.owner.seal, key, SEAL_BUDGET)
        return web.Response(status=status, body=body, content_type="application/json")

    async def prepare(self, request):
        raw, canonical = await self._invoice(request)
        key = TWO_PHASE + request.headers.get("Idempotency-Key", "auto-" + uuid.uuid4().hex)
        self._new_request(key, raw, canonical)
        answer = await self._device(self.owner.prepare, key, SEAL_BUDGET)
        return _json(200, {"status": "ok", "code": "INVOICE_PREPARED", "payload": answer})

    async def _nonce_row(self, request):
        self._authorise(request)
        try:
            nonce = bytes.fromhex(json.loads(await request.read())["nonce"])
        except (ValueError, KeyError, TypeError):
            raise InvalidPayload("body must be {\"nonce\": \"<32 hex digits>\"}", "nonce")
        row = self.store.request_by_nonce(nonce)
        if row is None:
            raise _Refusal("FISCALIZATION_FAILED", "nonce is not known to this daemon", field="nonce",
                           device_code="NONCE_UNKNOWN")
        return row

    async def commit(self, request):
        row = await self._nonce_row(request)
        status, body = await self._device(self.owner.seal, row["key"], SEAL_BUDGET)
        return web.Response(status=status, body=body, content_type="application/json")

    async def abort(self, request):
        row = await self._nonce_row(request)
        state = await self._device(self.owner.abort, row["key"], SEAL_BUDGET)
        return _json(200, {"status": "ok", "code": "INVOICE_ABORTED", "payload": {"state": state}})

    async def get(self, request):
        self._authorise(request)
        row = self.store.invoice(request.match_info["fiscal_number"])
        if row is None:
            raise _Refusal("NOT_FOUND", "no sealed invoice %s" % request.match_info["fiscal_number"])
        return _json(200, {"status": "ok", "code": "INVOICE_FOUND", "payload": invoice_view(row)})

    async def list(self, request):
        self._authorise(request)
        sql, args, page, per_page = list_query(request.query)
        rows = self.store.conn().execute(sql, args).fetchall()
        return _json(200, {"status": "ok", "code": "INVOICES", "page": page, "per_page": per_page,
                           "payload": [invoice_view(row) for row in rows]})

    async def tax_groups(self, request):
        self._authorise(request)
        groups = [{"code": c, "name": n, "rate": "%d.%06d" % divmod(r, taxgroups.PPM), "rate_ppm": r,
                   "effective_from": e} for c, n, r, e in taxgroups.MANIFEST]
        return _json(200, {"status": "ok", "code": "TAX_GROUPS", "payload": groups})

    async def verify(self, request):
        self._authorise(request)
        row = self.store.invoice(request.match_info["fiscal_number"])
        if row is None:
            raise _Refusal("NOT_FOUND", "no sealed invoice %s" % request.match_info["fiscal_number"])
        payload = json.loads(row["sealed_json"])["payload"]
        key = bytes.fromhex(self.store.meta("device")["public_key"])
        body, sig = bytes.fromhex(payload["signed_record"]), bytes.fromhex(payload["signature"])
        checks = {"signature": fast_verifier(key)(body, sig),
                  "invoice_hash": row["canonical"] is not None
                  and hashlib.sha256(row["canonical"]).digest() == row["invoice_hash"]}
        return _json(200, {"status": "ok", "code": "VERIFIED" if all(checks.values()) else "NOT_VERIFIED",
                           "payload": {"fiscal_number": row["fiscal_number"], "valid": all(checks.values()),
                                       "checks": checks, "public_key": key.hex()}})

    async def status(self, request):
        self._authorise(request)
        info = await self._device(self.owner.status, 2.0)
        info["outlet_id"] = request.match_info["outlet_id"]
        return _json(200, {"status": "ok", "code": "OUTLET_STATUS", "payload": info})

    async def export(self, request):
        self._authorise(request)
        data = await self._device(self.owner.export, SEAL_BUDGET)
        return web.Response(status=200, body=data, content_type="application/json",
                            headers={"Content-Disposition": "attachment; filename=journal-export.json"})


class _Refusal(HostdError):
    """A refusal decided by the API layer itself, with its envelope code."""

    def __init__(self, code, detail, field=None, retry=None, device_code=None):
        HostdError.__init__(self, detail, field)
        self.code = code
        self.retry = retry
        self.device_code = device_code

