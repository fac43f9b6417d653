"""GET /api/v1/invoices/{fiscal_number}/receipt (issue 14): the printable receipt of a sealed
invoice, ``format=html`` (default; ``width=58|80`` mm), ``txt`` (``columns=32|42|48``), or only
its QR code as ``svg`` or ``png`` (hostd/books/receipt.py)."""

import json

from aiohttp import web

from hostd.api.replies import Refusal, Resource
from hostd.books import receipt
from hostd.errors import InvalidPayload

TYPES = {"html": "text/html", "txt": "text/plain", "svg": "image/svg+xml", "png": "image/png"}


def _choice(params, name, allowed, default):
    value = params.get(name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or int(value) not in allowed:
        raise InvalidPayload("%s must be one of %s" % (name, ", ".join(str(a) for a in allowed)), name)
    return int(value)


class Receipts(Resource):
    def routes(self):
        return [web.get("/api/v1/invoices/{fiscal_number}/receipt", self.receipt)]

    async def receipt(self, request):
        self.api.authorise_page(request)
        fmt = request.query.get("format", "html")
        if fmt not in TYPES:
            raise InvalidPayload("format must be one of %s" % ", ".join(TYPES), "format")
        row = self.store.invoice(request.match_info["fiscal_number"])
        if row is None or row["canonical"] is None:
            raise Refusal("NOT_FOUND", "no sealed invoice %s with its lines" % request.match_info["fiscal_number"])
        sealed = json.loads(row["sealed_json"])["payload"]
        verify_url = self.api.merchant.verify_url if self.api.merchant is not None else None
        r = receipt.Receipt(row, sealed, verify_url)
        if fmt == "html":
            body = receipt.page(r, _choice(request.query, "width", (58, 80), 80)).encode("utf-8")
        elif fmt == "txt":
            body = receipt.text(r, _choice(request.query, "columns", receipt.COLUMNS, 42)).encode("utf-8")
        elif fmt == "svg":
            body = receipt.qr(r.qr_text, "svg").encode("ascii")
        else:
            body = receipt.qr(r.qr_text, "png", scale=_choice(request.query, "scale", range(1, 21), 6))
        charset = "utf-8" if fmt in ("html", "txt") else None
        return web.Response(body=body, content_type=TYPES[fmt], charset=charset)
