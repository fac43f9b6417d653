"""Void and refund (seed 002; issue 11): ``POST /api/v1/invoices/{fiscal_number}/void`` and
``/refund``, each a credit note naming its original, sealed like ``POST /api/v1/invoices``.

The handler reads and checks the request body; everything else happens on the owner thread
(hostd/owner/credits.py), once it has connected and reconciled: the key's row, STATUS, the
original (404) and the token's right to its outlet (403), EVIDENCE, then the credit note built
from the original and what the device proved remains (hostd/books/credit_notes.py,
hostd/books/refunds.py), the device's rules, the SEAL. The answer is the sealed envelope, exactly
as for POST /api/v1/invoices; the same Idempotency-Key with the same body (and the same original)
gets the byte-identical answer, with another body IDEMPOTENCY_KEY_REUSED. The body hash covers the
endpoint and the original as the path names it as well as the body, so the same key can never
stand for two different credits.

- void: ``{"reason": str, "adjustments"?: [{"code"?: str, "line"?: int, "quantity": number}]}``
- refund: ``{"amount": number, "currency": str, "payment_reference": str, "reason"?: str}``
"""

import hashlib
import time

from aiohttp import web

from hostd.api.accept import document_bytes, idempotency_key, pending_of
from hostd.api.replies import Resource
from hostd.books import credit_notes, refunds
from hostd.errors import CreditCurrencyMismatch, InvalidPayload, OriginalContentMissing, OriginalSettled
from hostd.intake import pricing, strictjson
from hostd.intake.amounts import scaled
from hostd.intake.canonical import parse_invoice
from hostd.owner.owner import SEAL_BUDGET
from hostd.owner.credits import CreditOrder
from protocol import cbor, invoice, taxgroups

VOID_FIELDS = ("reason", "adjustments")
ADJUSTMENT_FIELDS = ("code", "line", "quantity")
REFUND_FIELDS = ("amount", "currency", "payment_reference", "reason")


class Credits(Resource):
    def routes(self):
        return [
            web.post("/api/v1/invoices/{fiscal_number}/void", self.void),
            web.post("/api/v1/invoices/{fiscal_number}/refund", self.refund),
        ]

    async def _request(self, request, fields):
        """(key, raw body, body object) of a void or refund request."""
        self.api.authorise(request)
        key = idempotency_key(request, "1p:")
        raw = await self.api.body(request)
        return key, raw, _object(strictjson.loads(raw), fields, "body")

    def _order(self, request, key, kind, raw, fields, make):
        """The CreditOrder handed to the owner; ``make(canonical map, row, remaining, now)`` gives
        the credit note's JSON document. The original is looked up on the owner thread, after it
        connected and reconciled (a daemon just started may not have filed it yet)."""
        number = request.match_info["fiscal_number"]
        body_hash = hashlib.sha256(("%s\n%s\n" % (kind, number)).encode() + raw).digest()

        def build(row, left):
            if row["canonical"] is None:
                raise OriginalContentMissing(
                    "%s was filed from the device journal alone (the store was lost): its lines are unknown. Retry "
                    "its own request with its Idempotency-Key to complete it, or POST the credit note to "
                    "/api/v1/invoices" % row["fiscal_number"], "fiscal_number")
            text = document_bytes(make(cbor.decode(row["canonical"]), row, left, _now()))
            return pending_of(key, body_hash, parse_invoice(text, self.api.merchant), text)

        def authorise(outlet_id):
            if outlet_id is not None:
                self.api.check_outlet(request, outlet_id)
        return CreditOrder(key, body_hash, number, build, fields, authorise=authorise)

    async def _seal(self, order):
        status, body = await self.api.device(self.owner.seal_credit, order, SEAL_BUDGET)
        return web.Response(status=status, body=body, content_type="application/json")

    async def void(self, request):
        key, raw, body = await self._request(request, VOID_FIELDS)
        reason = _text(body, "reason", required=True)
        adjustments = _adjustments(body.get("adjustments"))

        def make(doc, row, left, now):
            return credit_notes.void_document(doc, row["fiscal_number"], reason, adjustments, now)
        fields = {"original": "fiscal_number", "currency": "totals.currency", "kind": "invoice_type",
                  "amounts": "adjustments"}
        return await self._seal(self._order(request, key, "void", raw, fields, make))

    async def refund(self, request):
        key, raw, body = await self._request(request, REFUND_FIELDS)
        currency = body.get("currency")
        if not isinstance(currency, str) or currency not in taxgroups.CURRENCIES:
            raise InvalidPayload("currency must be one of %s" % ", ".join(sorted(taxgroups.CURRENCIES)), "currency")
        if "amount" not in body:
            raise InvalidPayload("missing field amount", "amount")
        amount = scaled(body["amount"], 10 ** taxgroups.CURRENCIES[currency], "amount", "the currency's minor unit")
        if amount <= 0:
            raise InvalidPayload("amount must be greater than 0", "amount")
        reference = _text(body, "payment_reference", required=True, empty=True)
        reason = _text(body, "reason", required=False, empty=True)

        def make(doc, row, left, now):
            if currency != row["currency"]:
                raise CreditCurrencyMismatch("the refund is in %s, the original %s in %s" % (
                    currency, row["fiscal_number"], row["currency"]), "currency")
            if not [g for g in left if g[1] or g[2]]:
                raise OriginalSettled("%s is fully credited already: nothing remains to refund" % row["fiscal_number"],
                                      "fiscal_number")
            rates = pricing.rates_at(now)
            gone = [g[0] for g in left if g[0] not in rates]
            if gone:
                raise InvalidPayload("tax group %s of the original is no longer in force: refund it with a credit "
                                     "note of your own" % gone[0], "amount")
            groups = refunds.split(amount, left, rates, taxgroups.CURRENCIES[currency])
            return credit_notes.refund_document(doc, row["fiscal_number"], reason, groups, reference, now)
        fields = {"original": "fiscal_number", "currency": "currency", "kind": "invoice_type", "amounts": "amount"}
        return await self._seal(self._order(request, key, "refund", raw, fields, make))


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _object(doc, fields, where):
    if not isinstance(doc, dict):
        raise InvalidPayload("%s must be a JSON object" % where, where)
    for name in doc:
        if name not in fields:
            raise InvalidPayload("unknown field %s (known: %s)" % (name, ", ".join(fields)),
                                 name if where == "body" else "%s.%s" % (where, name))
    return doc


def _text(body, name, required, empty=False):
    if name not in body:
        if required:
            raise InvalidPayload("missing field %s" % name, name)
        return ""
    value = body[name]
    if not isinstance(value, str) or (not value and not empty) or len(value) > invoice.MAX_TEXT:
        raise InvalidPayload("%s must be a%s text of at most %d characters" % (
            name, "" if empty else " non-empty", invoice.MAX_TEXT), name)
    return value


def _adjustments(value):
    """The void's adjustments (None or [] is a full void), each an object naming a line."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > invoice.MAX_ITEMS:
        raise InvalidPayload("adjustments must be an array of at most %d lines" % invoice.MAX_ITEMS, "adjustments")
    for i, adj in enumerate(value):
        where = "adjustments[%d]" % i
        _object(adj, ADJUSTMENT_FIELDS, where)
        if "quantity" not in adj:
            raise InvalidPayload("missing field %s.quantity" % where, where + ".quantity")
        if "code" not in adj and "line" not in adj:
            raise InvalidPayload("%s names the original's line by code (or line, its index)" % where, where + ".code")
    return value or None
