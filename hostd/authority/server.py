"""``fiscal authority serve``: the receiving side of the sync (docs/SYNC.md "Endpoints").

What a tax authority or a merchant's head office runs. Routes:

- ``POST /api/v1/devices/{device_id}/records``: an upload (hostd/books/upload.py); 200 with the
  acknowledgement, or a typed refusal (hostd/authority/intake.py) with ``seq``, ``expected_seq``
  and ``rule`` where they apply;
- ``GET /api/v1/devices/{device_id}``: the head the authority holds (where a daemon resumes);
- ``GET /api/v1/invoices/{fiscal_number}``: one accepted invoice, its record and acknowledgement;
- ``GET /health``: counts of what is held.

Checking an upload (signatures, the store's transaction) runs in worker threads, so one large
upload never stalls the others; uploads of one device are taken one at a time.
"""

import asyncio
import logging
import signal
import time

from aiohttp import web

from hostd.authority.intake import Intake
from hostd.authority.ledger import Ledger
from hostd.books import envelope, upload
from hostd.errors import HostdError, InvalidRequest, UploadRefused
from hostd.intake import strictjson
from protocol import timefmt

log = logging.getLogger("fiscal.authority")


def _error(status, code, detail, **extra):
    doc = {"status": "error", "code": code, "detail": detail}
    doc.update((k, v) for k, v in extra.items() if v is not None)
    return web.Response(status=status, body=envelope.dumps(doc), content_type="application/json")


@web.middleware
async def _errors(request, handler):
    try:
        return await handler(request)
    except UploadRefused as exc:
        log.warning("refused an upload for %s: %s %s", request.match_info.get("device_id"), exc.code, exc.detail)
        return _error(exc.status, exc.code, exc.detail, field=exc.field, seq=exc.seq, expected_seq=exc.expected_seq,
                      rule=exc.rule)
    except HostdError as exc:
        return _error(envelope.HTTP_FOR.get(exc.code, 400), exc.code, exc.detail, field=exc.field)


class Authority:
    def __init__(self, db_path, authority_keys):
        self.ledger = Ledger(db_path)
        self.intake = Intake(self.ledger, authority_keys)

    def app(self):
        app = web.Application(middlewares=[_errors], client_max_size=upload.MAX_BODY)
        app.router.add_post("/api/v1/devices/{device_id}/records", self.post_records)
        app.router.add_get("/api/v1/devices/{device_id}", self.get_device)
        app.router.add_get("/api/v1/invoices/{fiscal_number}", self.get_invoice)
        app.router.add_get("/health", self.health)
        return app

    async def post_records(self, request):
        device_id = request.match_info["device_id"]
        if request.content_type != "application/json":
            raise InvalidRequest("an upload is application/json", "Content-Type")
        body = await request.read()
        doc = strictjson.loads(body, field="body")
        ack = await asyncio.to_thread(self.intake.receive, device_id, doc, time.time())
        return web.Response(body=envelope.dumps(ack), content_type="application/json")

    async def get_device(self, request):
        device_id = request.match_info["device_id"]
        row = await asyncio.to_thread(self.ledger.device, device_id)
        if row is None:
            return _error(404, "NOT_FOUND", "the authority holds nothing of %s" % device_id, field="device_id")
        return web.json_response({"status": "ok", "device_id": device_id, "authority_id": row["authority_id"],
                                  "head": {"seq": row["head_seq"], "hash": bytes(row["head_hash"]).hex()},
                                  "first_seen": row["first_seen"], "updated": row["updated"]})

    async def get_invoice(self, request):
        number = request.match_info["fiscal_number"]
        doc = await asyncio.to_thread(self._invoice, number)
        if doc is None:
            return _error(404, "NOT_FOUND", "no accepted invoice %s" % number, field="fiscal_number")
        return web.json_response(doc)

    def _invoice(self, number):
        row = self.ledger.invoice(number)
        if row is None:
            return None
        device, seq = row["device_id"], row["seq"]
        return {"status": "ok", "fiscal_number": number, "device_id": device, "seq": seq, "counter": row["counter"],
                "total": row["total"], "currency": row["currency"], "invoice_type": row["invoice_type"],
                "sealed_at": timefmt.format_time(row["sealed_time"]), "acknowledged_at": row["acknowledged_at"],
                "record": self.ledger.held(device, seq, seq)[seq].hex(),
                "ledger_hash": self.ledger.hashes(device, seq, seq)[seq].hex(),
                "canonical": None if row["canonical"] is None else bytes(row["canonical"]).hex()}

    async def health(self, request):
        devices, records, invoices = await asyncio.to_thread(self.ledger.counts)
        return web.json_response({"status": "ok", "devices": devices, "records": records, "invoices": invoices})


def serve(db_path, host, port, authority_keys, ssl_context=None, ready=None):
    """Block serving until SIGTERM or SIGINT."""
    asyncio.run(_serve(Authority(db_path, authority_keys), host, port, ssl_context, ready))


async def _serve(authority, host, port, ssl_context, ready):
    runner = web.AppRunner(authority.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("authority serving %s://%s:%d, store %s, trusting %s", "https" if ssl_context else "http", host, port,
             authority.ledger.path, ", ".join(sorted(authority.intake.keys)))
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
