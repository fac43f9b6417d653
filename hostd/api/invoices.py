"""Invoice endpoints: seal in one call, the two-phase prepare/commit/abort, get and list (seed 002).
GET of an original also lists its credit notes and what remains of it (issue 11); void and refund
are hostd/api/credits.py."""

import re
import time

from aiohttp import web

from hostd.api.accept import accept, idempotency_key
from hostd.api.replies import Refusal, Resource, json_response
from hostd.books.credit_notes import balance_view, original_groups
from hostd.books.views import invoice_view, quarantined_view
from hostd.errors import InvalidPayload
from hostd.intake import strictjson
from hostd.owner.owner import SEAL_BUDGET, TWO_PHASE
from hostd.intake.pricing import rates_at
from protocol import invoice, timefmt


_NONCE = re.compile(r"\A[0-9a-fA-F]{32}\Z")


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
        """An accepted canonical invoice request, not stored yet (hostd/api/accept.py)."""
        self.api.authorise(request)
        key = idempotency_key(request, prefix)
        return accept(self.api, request, key, await self.api.body(request))

    async def create(self, request):
        pending = await self._invoice(request, "1p:")
        status, body = await self.api.seal(pending, SEAL_BUDGET)
        return web.Response(status=status, body=body, content_type="application/json")

    async def prepare(self, request):
        pending = await self._invoice(request, TWO_PHASE)
        if pending["original"] is not None:   # EVIDENCE is armed for the next SEAL only (hostd/owner/credits.py)
            raise InvalidPayload("a %s is sealed in one call: POST /api/v1/invoices, or the original's /void or "
                                 "/refund" % pending["invoice_type"], "invoice_type")
        answer = await self.api.device(self.owner.prepare, pending, SEAL_BUDGET)
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
            view = invoice_view(row)
            if row["invoice_type"] not in invoice.CREDIT_TYPES:   # an original: its credits and what remains
                view.update(balance_view(original_groups(view), self.store.credits_of(row["counter"]), row["currency"],
                                         rates_at(timefmt.format_time(int(time.time())))))
            return json_response(200, {"status": "ok", "code": "INVOICE_FOUND", "payload": view})
        held = self.store.quarantined_invoice(number)
        if held is not None and held["sealed_json"]:
            return json_response(200, {"status": "ok", "code": "INVOICE_QUARANTINED", "payload": quarantined_view(held)})
        raise Refusal("NOT_FOUND", "no sealed invoice %s" % number)

    async def list(self, request):
        self.api.authorise(request)
        rows, page, per_page = self.store.list_invoices(request.query)
        return json_response(200, {"status": "ok", "code": "INVOICES", "page": page, "per_page": per_page,
                                   "payload": [invoice_view(row) for row in rows]})
