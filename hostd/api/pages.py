"""GET / (issue 14): the status page for people at the counter (hostd/books/statuspage.py).

Read-only, and behind the token when the daemon has one: a browser sends it as
``Authorization: Bearer`` or, for a bookmark, as ``?token=``; the page then uses it for its own
refreshing fetches.
"""

import asyncio
import time

from aiohttp import web

from hostd.api.replies import Resource
from hostd.api.reports import view
from hostd.api.sync import summary as sync_summary
from hostd.books import statuspage
from hostd.store.closures import Closures
from hostd.store.outbox import Outbox
from protocol import cbor, invoice, timefmt

DAYS = 30


class Pages(Resource):
    def routes(self):
        return [web.get("/", self.status_page)]

    async def status_page(self, request):
        token = self.api.authorise_page(request)
        status = await self.api.device(self.owner.status, 2.0)
        status["certificate"] = "present" if (self.owner.info or {}).get("certificate") else None
        now = int(time.time())
        today = timefmt.format_time(now)[:10]
        rows, _, _ = self.store.list_invoices({"sort": "-fiscal_number", "per_page": "20"})
        invoices = [{"fiscal_number": r["fiscal_number"], "timestamp": r["sealed_at"], "total_minor": r["total"],
                     "currency": r["currency"], "dgi_status": r["dgi_status"]} for r in rows]
        groups = {}
        for row in self.store.invoices_between(today + "T00:00:00Z", today + "T23:59:59Z"):
            doc = cbor.decode(row["canonical"])
            sign = -1 if doc[5] in invoice.CREDIT_TYPES else 1
            for line in doc[9]:
                base, tax = groups.get(line[1], (0, 0))
                groups[line[1]] = (base + sign * line[4], tax + sign * line[5])
        first = timefmt.format_time(now - (DAYS - 1) * 86400)[:10]
        known = dict(self.store.daily_totals(first + "T00:00:00Z"))
        days = [(timefmt.format_time(now - (DAYS - 1 - i) * 86400)[:10], 0) for i in range(DAYS)]
        days = [(day, known.get(day, 0)) for day, _ in days]
        closures = [view(r) for r in Closures(self.store).reports(limit=20) if r["type"] in ("Z", "M", "Y")][:5]
        status["closures"] = {"missing_z": list(self.api.closer.missing) if self.api.closer else []}
        if self.api.sync is not None:
            status["sync"] = await asyncio.to_thread(sync_summary, self.api.sync)
        page = statuspage.render(status, invoices, [(c, b, t) for c, (b, t) in sorted(groups.items())], days,
                                 Outbox(self.store).health(), token, closures)
        return web.Response(body=page.encode("utf-8"), content_type="text/html", charset="utf-8")
