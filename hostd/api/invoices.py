"""Invoice endpoints: seal in one call, the two-phase prepare/commit/abort, get and list (seed 002)."""

import hashlib
import json
import time
import uuid

from aiohttp import web

from hostd.api.replies import Refusal, json_response
from hostd.books.canonical import to_canonical
from hostd.books.views import invoice_view
from hostd.errors import InvalidPayload
from hostd.owner.owner import SEAL_BUDGET, TWO_PHASE


class Invoices:
    def __init__(self, api):
        self.api = api
        self.store = api.store
        self.owner = api.owner

    def routes(self):
        return [
            web.post("/api/v1/invoices", self.create),
            web.post("/api/v1/invoices/prepare", self.prepare),
            web.post("/api/v1/invoices/commit", self.commit),
            web.post("/api/v1/invoices/abort", self.abort),
            web.get("/api/v1/invoices", self.list),
            web.get("/api/v1/invoices/{fiscal_number}", self.get),
        ]

    async def _invoice(self, request):
        self.api.authorise(request)
        raw = await request.read()
        canonical, _ = to_canonical(raw)
        doc = json.loads(raw)
        if self.api.outlet is not None and doc["outlet_id"] != self.api.outlet:
            raise Refusal("FORBIDDEN", "this daemon seals for outlet %s only" % self.api.outlet, field="outlet_id")
        return raw, canonical

    def _new_request(self, key, raw, canonical):
        """Insert the request row, or check a retry carries the same body (Idempotency-Key)."""
        body_hash = hashlib.sha256(raw).digest()
        if not self.store.add_request(key, body_hash, canonical, raw.decode(), time.time()):
            if self.store.request(key)["body_hash"] != body_hash:
                raise Refusal("IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different body")

    async def create(self, request):
        raw, canonical = await self._invoice(request)
        key = "1p:" + request.headers.get("Idempotency-Key", "auto-" + uuid.uuid4().hex)
        self._new_request(key, raw, canonical)
        status, body = await self.api.device(self.owner.seal, key, SEAL_BUDGET)
        return web.Response(status=status, body=body, content_type="application/json")

    async def prepare(self, request):
        raw, canonical = await self._invoice(request)
        key = TWO_PHASE + request.headers.get("Idempotency-Key", "auto-" + uuid.uuid4().hex)
        self._new_request(key, raw, canonical)
        answer = await self.api.device(self.owner.prepare, key, SEAL_BUDGET)
        return json_response(200, {"status": "ok", "code": "INVOICE_PREPARED", "payload": answer})

    async def _nonce_row(self, request):
        self.api.authorise(request)
        try:
            nonce = bytes.fromhex(json.loads(await request.read())["nonce"])
        except (ValueError, KeyError, TypeError):
            raise InvalidPayload("body must be {\"nonce\": \"<32 hex digits>\"}", "nonce")
        row = self.store.request_by_nonce(nonce)
        if row is None:
            raise Refusal("FISCALIZATION_FAILED", "nonce is not known to this daemon", field="nonce",
                          device_code="NONCE_UNKNOWN")
        return row

    async def commit(self, request):
        row = await self._nonce_row(request)
        status, body = await self.api.device(self.owner.seal, row["key"], SEAL_BUDGET)
        return web.Response(status=status, body=body, content_type="application/json")

    async def abort(self, request):
        row = await self._nonce_row(request)
        state = await self.api.device(self.owner.abort, row["key"], SEAL_BUDGET)
        return json_response(200, {"status": "ok", "code": "INVOICE_ABORTED", "payload": {"state": state}})

    async def get(self, request):
        self.api.authorise(request)
        row = self.store.invoice(request.match_info["fiscal_number"])
        if row is None:
            raise Refusal("NOT_FOUND", "no sealed invoice %s" % request.match_info["fiscal_number"])
        return json_response(200, {"status": "ok", "code": "INVOICE_FOUND", "payload": invoice_view(row)})

    async def list(self, request):
        self.api.authorise(request)
        rows, page, per_page = self.store.list_invoices(request.query)
        return json_response(200, {"status": "ok", "code": "INVOICES", "page": page, "per_page": per_page,
                                   "payload": [invoice_view(row) for row in rows]})
