"""``GET /health``: is this daemon fit to seal, for monitors and load balancers (issue 13).

It answers without a token (it tells nothing a POS could misuse: no invoice, no key) and checks
the three things a seal needs: the device answers INFO, its journal has room, and the store takes
a write. 200 when all three hold, 503 when one does not, with the reason in the document, so a
monitor can alert before a POS is refused.
"""

import asyncio

from aiohttp import web

from hostd.api.replies import Refusal, Resource, json_response
from hostd.errors import HostdError
from hostd.store.health import writable

DEVICE_BUDGET = 2.0
JOURNAL_WARN = 0.9   # past 90 % full the journal needs archiving soon


class Health(Resource):
    def routes(self):
        return [web.get("/health", self.health)]

    async def health(self, request):
        try:
            info = await self.api.device(self.owner.status, DEVICE_BUDGET)
        except Refusal as exc:   # the device queue is full: busy, not broken
            info = {"device_state": "busy", "detail": exc.detail}
        except HostdError as exc:
            info = {"device_state": "unavailable", "detail": exc.detail}
        store = await asyncio.get_running_loop().run_in_executor(None, writable, self.store.path)
        reachable = info.get("device_state") in ("ready", "busy")
        device = {"reachable": reachable, "state": info.get("device_state"), "device_id": info.get("device_id"),
                  "counter": info.get("counter"), "detail": info.get("detail") or info.get("fault")}
        journal = None
        if "journal_fill" in info:
            journal = {"fill": info["journal_fill"], "used": info["journal_used"], "size": info["journal_size"],
                       "nearly_full": info["journal_fill"] >= JOURNAL_WARN}
        healthy = reachable and info.get("device_state") != "faulty" and store["writable"] \
            and not (journal and info["journal_used"] >= info["journal_size"])
        doc = {"status": "ok" if healthy else "degraded", "code": "HEALTH",
               "payload": {"device": device, "journal": journal, "store": store}}
        return json_response(200 if healthy else 503, doc)
