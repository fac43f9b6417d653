"""Exports and imports for accountants (issue 12, seed 000 sections 2-3): the CSV of sealed
invoices, its reconciliation against an uploaded CSV, and the accounting entries of a period.
They read the store only (hostd/books/csvio.py, accounting.py); nothing here seals."""

from aiohttp import web

from hostd.api.replies import Resource, json_response
from hostd.books import accounting, csvio
from hostd.errors import InvalidPayload
from hostd.intake import strictjson

_FAR = "9999-12-31T23:59:59Z"


def _bound(params, name, default, end):
    value = params.get(name)
    if value is None:
        return default
    if len(value) == 10:
        value += "T23:59:59Z" if end else "T00:00:00Z"
    if len(value) != 20:
        raise InvalidPayload("%s must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ" % name, name)
    return value


class Exports(Resource):
    def routes(self):
        return [web.get("/api/v1/exports/invoices.csv", self.invoices_csv),
                web.post("/api/v1/imports/invoices.csv", self.import_csv),
                web.get("/api/v1/exports/accounting", self.accounting)]

    async def invoices_csv(self, request):
        self.api.authorise(request)
        first = _bound(request.query, "from", "0000-01-01T00:00:00Z", False)
        last = _bound(request.query, "to", _FAR, True)
        rows = [r for row in self.store.invoices_between(first, last) for r in csvio.rows_of(row)]
        return web.Response(body=csvio.write(rows).encode("utf-8"), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": "attachment; filename=invoices.csv"})

    async def import_csv(self, request):
        self.api.authorise(request)
        text = strictjson.text_of(await self.api.body(request))

        def lookup(number):
            row = self.store.invoice(number)
            return csvio.rows_of(row) if row is not None and row["canonical"] is not None else None
        missing, results = csvio.reconcile(text, lookup)
        if missing:
            raise InvalidPayload("the CSV lacks the column(s) %s" % ", ".join(missing), missing[0])
        counts = {kind: sum(1 for r in results if r["result"] == kind) for kind in ("matched", "mismatched", "unknown")}
        return json_response(200, {"status": "ok", "code": "CSV_RECONCILED", "payload": dict(counts, rows=results)})

    async def accounting(self, request):
        self.api.authorise(request)
        period = request.query.get("period")
        first, last = accounting.period_bounds(period)
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "ndjson"):
            raise InvalidPayload("format must be json or ndjson", "format")
        currency = request.query.get("currency", self.api.merchant.currency if self.api.merchant else "CDF")
        accounts = self.api.accounts or accounting.DEFAULT_ACCOUNTS
        rows = self.store.invoices_between(first, last, currency)
        entries = [e for row in rows for e in accounting.entries_of(row, accounts)]
        if fmt == "json":
            return json_response(200, {"status": "ok", "code": "ACCOUNTING_EXPORT",
                                       "payload": accounting.document(period, currency, entries)})
        device = self.store.meta("device") or {}
        header = {"device_id": device.get("device_id"), "period": period, "currency": currency,
                  "first_counter": rows[0]["counter"] if rows else None,
                  "last_counter": rows[-1]["counter"] if rows else None}
        body = accounting.ndjson(header, entries, self.store.meta("head"))
        return web.Response(body=body, content_type="application/x-ndjson")
