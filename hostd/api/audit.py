"""Audit endpoints: the verification of one sealed invoice and the journal export (seed 002)."""

import asyncio
import hashlib
import json

from aiohttp import web

from hostd.api.replies import Refusal, Resource, json_response
from hostd.books.keys import fast_verifier
from hostd.errors import InvalidPayload
from hostd.owner.archiving import export_file
from hostd.owner.owner import SEAL_BUDGET
from protocol import timefmt
from protocol.errors import InvoiceError
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
        """The journal export (hostd/owner/archiving.py): ``challenge=HEX`` (up to 64 bytes) has the
        device sign its head over the auditor's own challenge; ``from_seq=N`` or ``from=DATE`` starts
        at the checkpoint that anchors that record (a range always ends at the signed head)."""
        self.api.authorise(request)
        query = request.query
        challenge = query.get("challenge", "")
        if len(challenge) > 128 or len(challenge) % 2 or not all(c in "0123456789abcdefABCDEF" for c in challenge):
            raise InvalidPayload("challenge must be hex, at most 64 bytes", "challenge")
        from_seq = None
        if "from_seq" in query:
            text = query["from_seq"]
            if not (text.isascii() and text.isdigit() and 0 < len(text) <= 12):
                raise InvalidPayload("from_seq must be a record number", "from_seq")
            from_seq = int(text)
        elif "from" in query:
            try:
                stamp = timefmt.parse_time(query["from"] + ("T00:00:00Z" if len(query["from"]) == 10 else ""))
            except InvoiceError:
                raise InvalidPayload("from must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ", "from")
            from_seq = self.store.first_seq_at(stamp)
        while await self.api.device(self.owner.catch_up, SEAL_BUDGET):   # slices, so seals go between
            pass
        info, head = await self.api.device(self.owner.export_head, SEAL_BUDGET, bytes.fromhex(challenge))
        data = await asyncio.to_thread(export_file, self.store, self.owner.archive, info, head, from_seq)
        return web.Response(status=200, body=data, content_type="application/json",
                            headers={"Content-Disposition": "attachment; filename=journal-export.json"})
