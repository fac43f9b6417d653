"""Webhook subscriptions (issue 12; seed 001 "Webhook configuration"): create, list, read,
delete, and each subscription's delivery log.

``POST /api/v1/webhooks`` takes ``{url, events, secret, active}`` as in the seed, plus optional
``signature_header`` (the seed-style hex HMAC header, e.g. ``X-KutaPay-Signature``) and
``max_attempts`` (1-50, default 8). Secrets are never shown again: answers carry only their
first characters.
"""

import json
import re
import time
from urllib.parse import urlsplit

from aiohttp import web

from hostd.api.replies import Refusal, Resource, json_response
from hostd.books import events, signing
from hostd.errors import InvalidPayload, VerificationFailed
from hostd.intake import strictjson
from hostd.store.outbox import Outbox

_HEADER = re.compile(r"\AX-[A-Za-z0-9-]{1,60}\Z")
DEFAULT_ATTEMPTS = 8


def _checked(doc):
    if not isinstance(doc, dict):
        raise InvalidPayload("body must be an object {url, events, secret, active}")
    url = doc.get("url")
    parts = urlsplit(url) if isinstance(url, str) and len(url) <= 2048 else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidPayload("url must be an http or https URL", "url")
    names = doc.get("events")
    if not isinstance(names, list) or not names or any(n not in events.NAMES for n in names):
        raise InvalidPayload("events must list some of: %s" % ", ".join(events.NAMES), "events")
    secret = doc.get("secret")
    if not isinstance(secret, str) or len(secret) < 16:
        raise InvalidPayload("secret must be text of at least 16 characters (e.g. whsec_<base64>)", "secret")
    active = doc.get("active", True)
    if not isinstance(active, bool):
        raise InvalidPayload("active must be true or false", "active")
    header = doc.get("signature_header")
    if header is not None and (not isinstance(header, str) or not _HEADER.match(header)):
        raise InvalidPayload("signature_header must be a header name like X-KutaPay-Signature", "signature_header")
    attempts = doc.get("max_attempts", DEFAULT_ATTEMPTS)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 50:
        raise InvalidPayload("max_attempts must be an integer from 1 to 50", "max_attempts")
    try:
        signing.key_of(secret)   # a whsec_ secret must be base64
    except VerificationFailed as exc:
        raise InvalidPayload(exc.detail, "secret")
    return {"url": url, "events": sorted(set(names)), "secret": secret, "active": active,
            "signature_header": header, "max_attempts": attempts}


def _view(row):
    return {"id": row["id"], "url": row["url"], "events": json.loads(row["events"]),
            "secret": row["secret"][:8] + "…", "active": bool(row["active"]),
            "signature_header": row["signature_header"], "max_attempts": row["max_attempts"],
            "disabled_reason": row["disabled_reason"]}


class Webhooks(Resource):
    def __init__(self, api):
        Resource.__init__(self, api)
        self.outbox = Outbox(api.store)

    def routes(self):
        return [web.post("/api/v1/webhooks", self.create), web.get("/api/v1/webhooks", self.list),
                web.get("/api/v1/webhooks/{id}", self.get), web.delete("/api/v1/webhooks/{id}", self.delete),
                web.get("/api/v1/webhooks/{id}/deliveries", self.deliveries)]

    def _row(self, request):
        row = self.outbox.webhook(request.match_info["id"])
        if row is None:
            raise Refusal("NOT_FOUND", "no webhook %s" % request.match_info["id"])
        return row

    async def create(self, request):
        self.api.authorise(request)
        doc = _checked(strictjson.loads(await self.api.body(request)))
        hook_id = self.outbox.add_webhook(doc, time.time())
        return json_response(201, {"status": "ok", "code": "WEBHOOK_CREATED", "payload": _view(self.outbox.webhook(hook_id))})

    async def list(self, request):
        self.api.authorise(request)
        return json_response(200, {"status": "ok", "code": "WEBHOOKS",
                                   "payload": [_view(r) for r in self.outbox.webhooks()]})

    async def get(self, request):
        self.api.authorise(request)
        return json_response(200, {"status": "ok", "code": "WEBHOOK", "payload": _view(self._row(request))})

    async def delete(self, request):
        self.api.authorise(request)
        row = self._row(request)
        self.outbox.delete_webhook(row["id"])
        return json_response(200, {"status": "ok", "code": "WEBHOOK_DELETED", "payload": {"id": row["id"]}})

    async def deliveries(self, request):
        self.api.authorise(request)
        row = self._row(request)
        log = [{"webhook_id": d["id"], "event": d["event_name"], "event_id": d["event_id"], "state": d["state"],
                "attempts": [{"n": a["n"], "at": a["at"], "status": a["status"], "error": a["error"], "ms": a["ms"]}
                             for a in attempts], "next_at": d["next_at"] if d["state"] == "pending" else None}
               for d, attempts in self.outbox.deliveries(row["id"])]
        return json_response(200, {"status": "ok", "code": "WEBHOOK_DELIVERIES", "payload": log})
