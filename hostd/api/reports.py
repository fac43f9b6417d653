"""Reports, closures, inclusion proofs and the technical log (issue 11; seeds 002 and 003 "reports").

``POST /api/v1/reports`` takes ``{type, outlet_id, period}``:

- ``Z``: the device closes the day (a signed CLOSURE record; ``period`` YYYY-MM-DD, default the
  device's UTC day); ``M`` (YYYY-MM) and ``Y`` (YYYY) are signed from the Z (M) closures;
- ``X``: the open period's figures as the device computes them, unsigned, nothing written;
- ``A``: the audit export from the period's start (YYYY-MM-DD, YYYY-MM or YYYY) to a head the
  device signs now (a range always ends at the head, so nothing can be cut off its end).

Each answers ``report_id``, ``download_url`` (the bundle: hostd/books/closures.py), ``ledger_hash``
(the closure's record hash; for X and A the journal head the report ends at) and the bundle's
SHA-256. An ``Idempotency-Key`` makes a retry answer the report made the first time. Closures
concern the whole device: without ``outlet_id`` the token must act for every outlet.
"""

import asyncio
import hashlib
import json
import re
import time

from aiohttp import web

from hostd.api.replies import Refusal, Resource, json_response
from hostd.books import closures as views
from hostd.books import events, proofs
from hostd.errors import InvalidPayload
from hostd.intake import strictjson
from hostd.owner.archiving import export_file
from hostd.owner.owner import SEAL_BUDGET
from hostd.store.closures import Closures, write_file
from protocol import cbor, record, timefmt
from protocol.errors import InvoiceError

PERIOD = {"Z": re.compile(r"\A\d{4}-\d{2}-\d{2}\Z"), "M": re.compile(r"\A\d{4}-\d{2}\Z"),
          "Y": re.compile(r"\A\d{4}\Z"), "A": re.compile(r"\A\d{4}(-\d{2}(-\d{2})?)?\Z")}
FORMAT = {"Z": "YYYY-MM-DD", "M": "YYYY-MM", "Y": "YYYY", "A": "YYYY-MM-DD, YYYY-MM or YYYY"}
MAX_LIST = 500


def _checked(doc):
    if not isinstance(doc, dict):
        raise InvalidPayload("body must be an object {type, outlet_id, period}")
    unknown = sorted(set(doc) - {"type", "outlet_id", "period"})
    if unknown:
        raise InvalidPayload("unknown field %s" % unknown[0], unknown[0])
    kind = doc.get("type")
    if kind not in ("X", "Z", "M", "Y", "A"):
        raise InvalidPayload("type must be X, Z, M, Y or A", "type")
    outlet = doc.get("outlet_id")
    if outlet is not None and (not isinstance(outlet, str) or not 0 < len(outlet) <= 64):
        raise InvalidPayload("outlet_id must be text of 1 to 64 characters", "outlet_id")
    period = doc.get("period")
    if kind == "X":
        if period is not None:
            raise InvalidPayload("an X report has no period: it is the open period since the last Z", "period")
    elif period is None:
        if kind != "Z":
            raise InvalidPayload("a %s report needs period (%s)" % (kind, FORMAT[kind]), "period")
    elif not isinstance(period, str) or not PERIOD[kind].match(period) or not _real(period):
        raise InvalidPayload("period of a %s report must be %s" % (kind, FORMAT[kind]), "period")
    return kind, outlet, period


def _real(period):
    start = period + {4: "-01-01", 7: "-01", 10: ""}[len(period)] + "T00:00:00Z"
    try:
        timefmt.parse_time(start, "period")
        return True
    except InvoiceError:
        return False


def view(row):
    return {"report_id": row["report_id"], "type": row["type"], "period": row["period"],
            "outlet_id": row["outlet_id"], "created": timefmt.format_time(int(row["created"])),
            "ledger_hash": row["ledger_hash"], "closure_seq": row["closure_seq"], "bundle_sha256": row["sha256"],
            "download_url": "/api/v1/reports/%s/download" % row["report_id"], "summary": json.loads(row["summary"])}


class Reports(Resource):
    def __init__(self, api):
        Resource.__init__(self, api)
        self.closures = Closures(api.store)

    def routes(self):
        return [web.post("/api/v1/reports", self.create), web.get("/api/v1/reports", self.list),
                web.get("/api/v1/reports/{report_id}", self.get),
                web.get("/api/v1/reports/{report_id}/download", self.download),
                web.get("/api/v1/invoices/{fiscal_number}/proof", self.proof),
                web.get("/api/v1/events", self.events)]

    def _scope(self, request, outlet):
        if outlet is None:
            self.api.check_all_outlets(request)
        else:
            self.api.check_outlet(request, outlet)

    async def create(self, request):
        self.api.authorise(request)
        kind, outlet, period = _checked(strictjson.loads(await self.api.body(request)))
        self._scope(request, outlet)
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            if not 0 < len(key) <= 255:
                raise InvalidPayload("Idempotency-Key must be 1 to 255 characters", "Idempotency-Key")
            done = self.closures.report_by_key(key)
            if done is not None:
                return json_response(200, {"status": "ok", "code": "REPORT_GENERATED", "payload": view(done)})
        if kind == "Z":
            row = await self.api.device(self._close_z, period)
        elif kind in ("M", "Y"):
            row = await self.api.device(self._close_outer, kind, period)
        elif kind == "X":
            row = await self._x(outlet, key)
        else:
            row = await self._audit(outlet, period, key)
        if key is not None and row["idempotency_key"] is None and not self.closures.set_key(row["report_id"], key):
            row = self.closures.report_by_key(key)   # a concurrent retry bound the key first
        return json_response(201, {"status": "ok", "code": "REPORT_GENERATED",
                                   "payload": view(self.closures.report(row["report_id"]))})

    def _close_z(self, period):
        return self.owner.close_z(time.monotonic() + SEAL_BUDGET, period)

    def _close_outer(self, kind, period):
        return self.owner.close_outer(time.monotonic() + SEAL_BUDGET, kind, period)

    async def _x(self, outlet, key):
        fields, head = await self.api.device(self.owner.x_figures, SEAL_BUDGET)
        device = self.store.meta("device")
        summary = views.summary(fields, device["device_id"])
        rid = "X-%s-%d" % (timefmt.format_time(fields[record.K_TIME]).replace(":", ""), fields[record.K_RANGE][1])
        data = (json.dumps({"format": views.BUNDLE_FORMAT, "summary": summary, "unsigned": True,
                            "head_hash": head.hex()}, sort_keys=True, indent=1) + "\n").encode()
        return await asyncio.to_thread(self._file_report, rid, "X", None, outlet, head.hex(), data, summary, key)

    async def _audit(self, outlet, period, key):
        start = timefmt.parse_time(period + {4: "-01-01", 7: "-01", 10: ""}[len(period)] + "T00:00:00Z")
        from_seq = self.store.first_seq_at(start)
        while await self.api.device(self.owner.catch_up, SEAL_BUDGET):
            pass
        info, head = await self.api.device(self.owner.export_head, SEAL_BUDGET, b"")
        data = await asyncio.to_thread(export_file, self.store, self.owner.archive, info, head, from_seq)
        statement = cbor.decode(bytes(head["statement"]))
        rid = "A-%s-%d" % (period, statement[record.H_SEQ])
        summary = {"kind": "A", "period": period, "from_seq": json.loads(data)["from_seq"],
                   "head_seq": statement[record.H_SEQ], "device_id": info["device_id"]}
        return await asyncio.to_thread(self._file_report, rid, "A", period, outlet,
                                       bytes(statement[record.H_HASH]).hex(), data, summary, key)

    def _file_report(self, rid, kind, period, outlet, ledger, data, summary, key):
        digest = hashlib.sha256(data).hexdigest()
        directory = self.owner.bundles_dir
        path = write_file(directory, rid + ".json", data, digest) if directory else None
        now = time.time()
        doc = {"report_id": rid, "type": kind, "period": period, "outlet_id": outlet, "created": now,
               "ledger_hash": ledger, "closure_seq": None, "file": path, "sha256": digest,
               "idempotency_key": key, "summary": json.dumps(summary, sort_keys=True)}
        if not self.closures.add_report(doc, (events.REPORT_GENERATED, events.report_generated(doc, summary)), now):
            existing = self.closures.report_by_key(key) if key else self.closures.report(rid)
            if existing is not None:
                return existing
        if self.owner.on_event is not None:
            self.owner.on_event()
        return self.closures.report(rid)

    def _row(self, request):
        row = self.closures.report(request.match_info["report_id"])
        if row is None:
            raise Refusal("NOT_FOUND", "no report %s" % request.match_info["report_id"])
        return row

    async def get(self, request):
        self.api.authorise(request)
        return json_response(200, {"status": "ok", "code": "REPORT", "payload": view(self._row(request))})

    async def list(self, request):
        self.api.authorise(request)
        kind = request.query.get("type")
        if kind is not None and kind not in ("X", "Z", "M", "Y", "A"):
            raise InvalidPayload("type must be X, Z, M, Y or A", "type")
        limit = _int(request.query, "limit", 100, 1, MAX_LIST)
        rows = self.closures.reports(kind, limit)
        return json_response(200, {"status": "ok", "code": "REPORTS", "payload": [view(r) for r in rows]})

    async def download(self, request):
        self.api.authorise_page(request)
        row = self._row(request)
        if row["file"] is None:
            raise Refusal("NOT_FOUND", "report %s has no file (the daemon keeps no state directory)" % row["report_id"])
        try:
            data = await asyncio.to_thread(_read, row["file"])
        except FileNotFoundError:
            raise Refusal("NOT_FOUND", "the file of report %s is gone from %s" % (row["report_id"], row["file"]))
        fmt = request.query.get("format", "json")
        if fmt == "csv" and row["type"] in ("Z", "M", "Y"):
            data, ctype, name = json.loads(data)["csv"].encode("utf-8"), "text/csv", row["report_id"] + ".csv"
        elif fmt == "json":
            ctype, name = "application/json", row["report_id"] + ".json"
        else:
            raise InvalidPayload("format must be json, or csv for a Z, M or Y report", "format")
        return web.Response(body=data, content_type=ctype, headers={
            "Content-Disposition": "attachment; filename=%s" % name, "X-Bundle-SHA256": row["sha256"]})

    async def proof(self, request):
        self.api.authorise(request)
        number = request.match_info["fiscal_number"]
        row = self.store.invoice(number)
        if row is None:
            raise Refusal("NOT_FOUND", "no sealed invoice %s" % number)
        doc = await asyncio.to_thread(self._proof, row)
        return json_response(200, {"status": "ok", "code": "INCLUSION_PROOF", "payload": doc})

    def _proof(self, row):
        seq = row["seq"]
        closure = self.closures.covering(seq)
        if closure is None:
            raise Refusal("NOT_FOUND", "invoice %s is in the open period: no Z closure covers record %d yet "
                          "(POST /api/v1/reports {\"type\": \"Z\"} closes it)" % (row["fiscal_number"], seq))
        rows = self.store.journal_between(closure["first_seq"], closure["last_seq"])
        hashes = [bytes(r["hash"]) for r in rows]
        if len(hashes) != closure["last_seq"] - closure["first_seq"] + 1:
            raise Refusal("NOT_FOUND", "the mirror no longer holds every record of the closure of record %d "
                          "(a rebuilt store): no proof can be made here" % seq)
        rec = bytes(rows[seq - closure["first_seq"]]["record"])
        prev = self.store.journal_hash(seq - 1) if seq > 1 else record.genesis()
        if prev is None:
            raise Refusal("NOT_FOUND", "the mirror lacks the record before %d: no proof can be made here" % seq)
        return proofs.build(seq, rec, prev, closure, hashes)

    async def events(self, request):
        """The technical log: device-signed non-invoice records with ``from <= time <= to``."""
        self.api.authorise(request)
        first = _stamp(request.query, "from", 0, False)
        last = _stamp(request.query, "to", timefmt.MAX_TIME, True)
        limit = _int(request.query, "limit", 1000, 1, 10000)
        await self.api.device(self.owner.note)
        rows = self.closures.technical(first, last, limit)
        return json_response(200, {"status": "ok", "code": "TECHNICAL_EVENTS", "payload": [
            {"seq": r["seq"], "type": r["type"], "event": r["name"], "time": timefmt.format_time(r["time"]),
             "detail": json.loads(r["detail"]) if r["detail"] else {}} for r in rows]})


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def _int(query, name, default, low, high):
    text = query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 6) or not low <= int(text) <= high:
        raise InvalidPayload("%s must be an integer from %d to %d" % (name, low, high), name)
    return int(text)


def _stamp(query, name, default, end):
    text = query.get(name)
    if text is None:
        return default
    try:
        if len(text) == 10:
            return timefmt.parse_time(text + ("T23:59:59Z" if end else "T00:00:00Z"), name)
        return timefmt.parse_time(text, name)
    except InvoiceError:
        raise InvalidPayload("%s must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ" % name, name)
