"""POST /api/v1/invoices/batch (issue 12; seed 001 "Submit multiple payloads in one request").

``{"invoices": [{"idempotency_key": K, "invoice": {...}}, ...]}``, 1 to ``MAX_ITEMS`` items. The
answer is ``payload.results``: one ``{index, http_status, response}`` per item in input order,
where ``response`` is exactly the envelope a single ``POST /api/v1/invoices`` with that key and
invoice would have answered. One bad item does not stop the others; a retried batch replays
each item by its key, so nothing is sealed twice. Items are accepted in order and queued together
for the device owner thread, so the good items get consecutive fiscal numbers: SEAL_BATCH groups
of up to 16, each filed in one SQLite transaction, the next group signed by the device while the
last one is filed, the groups of the next request following on (hostd/owner/batching.py, the
queue the one-call API feeds too).

Each item's invoice is serialised again from the parsed batch (UTF-8, no whitespace, Decimals
as their exact text) to be hashed and stored: a retry of the same item gives the same bytes.
The body is read strictly once (hostd/intake/strictjson.py); an item's bytes, the daemon's own
writing of what that read, are read back with the json module alone.
Items without a ``timestamp`` all get the time the batch is accepted.
"""

import json

from aiohttp import web

from hostd.api.accept import accept, check_key, document_bytes
from hostd.api.limits import MAX_BATCH_BODY
from hostd.api.replies import Resource, json_response
from hostd.books import envelope
from hostd.errors import HostdError, InvalidPayload
from hostd.intake import shapes, strictjson
from hostd.owner.owner import SEAL_BUDGET

MAX_ITEMS = 500


class Batch(Resource):
    def routes(self):
        return [web.post("/api/v1/invoices/batch", self.batch)]

    async def batch(self, request):
        self.api.authorise(request)
        doc = strictjson.loads(await self.api.body(request, MAX_BATCH_BODY))
        items = doc.get("invoices") if isinstance(doc, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
            raise InvalidPayload("body must be {\"invoices\": [...]} with 1 to %d items" % MAX_ITEMS, "invoices")
        results, keys = [None] * len(items), []
        now = shapes.accepted_at()
        for i, item in enumerate(items):
            try:
                keys.append((i, self._accept(request, i, item, now)))
            except HostdError as exc:
                results[i] = _error(i, exc)
        if keys:
            answers = await self.api.seal_items([p for _, p in keys], SEAL_BUDGET)
            for (i, _), (status, body) in zip(keys, answers):
                results[i] = {"index": i, "http_status": status, "response": json.loads(body)}
        return json_response(200, {"status": "ok", "code": "BATCH_PROCESSED", "payload": {"results": results}})

    def _accept(self, request, i, item, now):
        where = "invoices[%d]" % i
        if not isinstance(item, dict) or not isinstance(item.get("invoice"), dict):
            raise InvalidPayload("%s must be {\"idempotency_key\": K, \"invoice\": {...}}" % where, where)
        key = "1p:" + check_key(item.get("idempotency_key"), where + ".idempotency_key")
        raw = document_bytes(item["invoice"])
        # the body was read strictly once; these bytes hold no number with a fraction (a Decimal
        # is written as its text), so the C reader gives exactly what strictjson would
        return accept(self.api, request, key, raw, now=now, sent=json.loads(raw))


def _error(i, exc):
    status, body, _ = envelope.error_of(exc)
    return {"index": i, "http_status": status, "response": json.loads(body)}
