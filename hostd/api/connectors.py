"""Other payload shapes (issue 12, seed 000 sections 5-6): e-commerce orders and ERP invoices,
mapped by hostd/intake/shapes.py and sealed through the same path as a POS invoice.

Both are idempotent without a header too: an order's ``order_id`` and an ERP invoice's
``connector_reference`` are their natural keys, so a web shop or connector that posts the same
document twice gets the same fiscal number. An ERP answer carries its ``connector_reference``
back (the ERP reconciles by it), added to the sealed envelope deterministically so a retry is
byte-identical.
"""

import json

from aiohttp import web

from hostd.api.accept import accept, check_key, document_bytes, idempotency_key
from hostd.api.replies import Resource
from hostd.books import envelope
from hostd.intake import shapes, strictjson
from hostd.owner.owner import SEAL_BUDGET


class Connectors(Resource):
    def routes(self):
        return [web.post("/api/v1/orders", self.order), web.post("/api/v1/erp/invoices", self.erp)]

    async def _seal(self, request, natural, mapper):
        self.api.authorise(request)
        raw = await self.api.body(request)
        doc = strictjson.loads(raw)
        now = shapes.accepted_at()   # the timestamp of an order or ERP invoice that sends none
        document, reference = mapper(doc, now)
        key = idempotency_key(request, "1p:", natural(doc))
        pending = accept(self.api, request, key, raw, document_bytes(document), reference, now)
        return await self.api.seal(pending, SEAL_BUDGET), reference

    async def order(self, request):
        (status, body), _ = await self._seal(
            request, lambda doc: "order:" + check_key(doc.get("order_id"), "order_id") if isinstance(doc, dict) else None,
            lambda doc, now: (shapes.order_invoice(doc, self.api.merchant, now), None))
        return web.Response(status=status, body=body, content_type="application/json")

    async def erp(self, request):
        (status, body), reference = await self._seal(
            request, lambda doc: "erp:" + check_key(doc.get("connector_reference"), "connector_reference")
            if isinstance(doc, dict) else None,
            lambda doc, now: shapes.erp_invoice(doc, self.api.merchant, now))
        if status == 200:
            doc = json.loads(body)
            doc["payload"]["connector_reference"] = reference
            body = envelope.dumps(doc)
        return web.Response(status=status, body=body, content_type="application/json")
