"""Audit endpoints: the verification of one sealed invoice and the journal export (seed 002)."""

import hashlib
import json

from aiohttp import web

from hostd.api.replies import Refusal, Resource, json_response
from hostd.books.keys import fast_verifier
from hostd.owner.owner import SEAL_BUDGET
from protocol import record


class Audit(Resource):
    def routes(self):
        return [
            web.get("/api/v1/verify/{fiscal_number}", self.verify),
            web.get("/api/v1/audit/export", self.export),
        ]

    async def verify(self, request):
        self.api.authorise(request)
        row = self.store.invoice(request.match_info["fiscal_number"])
        if row is None:
            raise Refusal("NOT_FOUND", "no sealed invoice %s" % request.match_info["fiscal_number"])
        payload = json.loads(row["sealed_json"])["payload"]
        key = bytes.fromhex(self.store.meta("device")["public_key"])
        body, sig = bytes.fromhex(payload["signed_record"]), bytes.fromhex(payload["signature"])
        signed = record.signing_input(bytes.fromhex(payload["previous_hash"]), body)   # protocol 2
        checks = {"signature": fast_verifier(key)(signed, sig),
                  "invoice_hash": row["canonical"] is not None
                  and hashlib.sha256(row["canonical"]).digest() == row["invoice_hash"]}
        return json_response(200, {"status": "ok", "code": "VERIFIED" if all(checks.values()) else "NOT_VERIFIED",
                                   "payload": {"fiscal_number": row["fiscal_number"], "valid": all(checks.values()),
                                               "checks": checks, "public_key": key.hex()}})

    async def export(self, request):
        self.api.authorise(request)
        data = await self.api.device(self.owner.export, SEAL_BUDGET)
        return web.Response(status=200, body=data, content_type="application/json",
                            headers={"Content-Disposition": "attachment; filename=journal-export.json"})
