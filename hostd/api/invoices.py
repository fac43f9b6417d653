"""Invoice endpoints: seal in one call, the two-phase prepare/commit/abort, get and list (seed 002)."""

import hashlib
import re
import time
import uuid

from aiohttp import web

from hostd.api.replies import Refusal, Resource, json_response
from hostd.books import strictjson
from hostd.books.canonical import parse_invoice
from hostd.books.views import invoice_view, quarantined_view
from hostd.errors import InvalidPayload, InvalidRequest
from hostd.owner.owner import SEAL_BUDGET, TWO_PHASE


MAX_KEY = 255
_KEY = re.compile(r"\A[\x21-\x7e][\x20-\x7e]*\Z")   # printable ASCII, not starting with a space
_NONCE = re.compile(r"\A[0-9a-fA-F]{32}\Z")


def idempotency_key(request, prefix):
    """The request's store key: ``prefix`` + its Idempotency-Key, or a fresh one when it sent none.

    A key is 1..255 printable ASCII characters; an empty or undecodable header is refused rather
    than taken as a key (two POS retries must mean the same thing to every HTTP stack)."""
    given = request.headers.get("Idempotency-Key")
    if given is None:
        return prefix + "auto-" + uuid.uuid4().hex
    if not given:
        raise InvalidRequest("Idempotency-Key must not be empty; omit the header for a one-off request",
                             "Idempotency-Key")
    if len(given) > MAX_KEY or not _KEY.match(given):
        raise InvalidRequest("Idempotency-Key must be 1 to %d printable ASCII characters" % MAX_KEY,
                             "Idempotency-Key")
    return prefix + given


class Invoices(Resource):
    def routes(self):
        return [
            web.post("/api/v1/invoices", self.create),
            web.post("/api/v1/invoices/prepare", self.prepare),
            web.post("/api/v1/invoices/commit", self.commit),
            web.post("/api/v1/invoices/abort", self.abort),
            web.get("/api/v1/invoices", self.list),
            web.get("/api/v1/invoices/{fiscal_number}", self.get),
        ]

    async def _invoice(self, request, prefix):
        """(store key, raw body, Parsed): the body read once, checked, canonicalised."""
        self.api.authorise(request)
        key = idempotency_key(request, prefix)
        raw = await self.api.body(request)
        parsed = parse_invoice(raw)
        self.api.check_outlet(request, parsed.doc["outlet_id"])
        self._new_request(key, raw, parsed)
        return key

    def _new_request(self, key, raw, parsed):
        """Insert the request row, or check a retry carries the same body (Idempotency-Key).
        The row keeps the body exactly as validated (strict UTF-8, so decoding is lossless)."""
        body_hash = hashlib.sha256(raw).digest()
        if not self.store.add_request(key, body_hash, parsed.canonical, raw.decode("utf-8"), time.time(),
                                      parsed.columns):
            if self.store.request(key)["body_hash"] != body_hash:
                raise Refusal("IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different body",
                              field="Idempotency-Key")

    async def create(self, request):
        key = await self._invoice(request, "1p:")
        status, body = await self.api.device(self.owner.seal, key, SEAL_BUDGET)
        return web.Response(status=status, body=body, content_type="application/json")

    async def prepare(self, request):
        key = await self._invoice(request, TWO_PHASE)
        answer = await self.api.device(self.owner.prepare, key, SEAL_BUDGET)
        return json_response(200, {"status": "ok", "code": "INVOICE_PREPARED", "payload": answer})

    async def _nonce_row(self, request):
        self.api.authorise(request)
        doc = strictjson.loads(await self.api.body(request))
        text = doc.get("nonce") if isinstance(doc, dict) else None
        if not isinstance(text, str) or not _NONCE.match(text):
            raise InvalidPayload("body must be {\"nonce\": \"<32 hex digits>\"}", "nonce")
        nonce = bytes.fromhex(text)
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
        number = request.match_info["fiscal_number"]
        row = self.store.invoice(number)
        if row is not None:
            return json_response(200, {"status": "ok", "code": "INVOICE_FOUND", "payload": invoice_view(row)})
        held = self.store.quarantined_invoice(number)
        if held is not None and held["sealed_json"]:
            return json_response(200, {"status": "ok", "code": "INVOICE_QUARANTINED", "payload": quarantined_view(held)})
        raise Refusal("NOT_FOUND", "no sealed invoice %s" % number)

    async def list(self, request):
        self.api.authorise(request)
        rows, page, per_page = self.store.list_invoices(request.query)
        return json_response(200, {"status": "ok", "code": "INVOICES", "page": page, "per_page": per_page,
                                   "payload": [invoice_view(row) for row in rows]})
