"""The sync to the authority as the POS and the operator see it (issue 12; docs/SYNC.md).

``GET /api/v1/sync``: where the upload stands (the authority's URL, the last record it holds,
what is pending, the last error, whether sync stopped at a refused record). ``POST
/api/v1/sync/retry``: start a stopped sync again (after the cause was fixed; the refused invoice is
``queued`` until the authority answers). Both answer 404 SYNC_OFF when no ``--sync-url`` is set.
"""

import asyncio
import time

from aiohttp import web

from hostd.api.replies import Refusal, Resource, json_response


class Sync(Resource):
    def routes(self):
        return [web.get("/api/v1/sync", self.get), web.post("/api/v1/sync/retry", self.retry)]

    def _agent(self, request):
        self.api.authorise(request)
        if self.api.sync is None:
            raise Refusal("NOT_FOUND", "sync to an authority is off: start the daemon with --sync-url", "sync")
        return self.api.sync

    async def get(self, request):
        agent = self._agent(request)
        return json_response(200, {"status": "ok", "code": "SYNC_STATE",
                                   "payload": await asyncio.to_thread(summary, agent)})

    async def retry(self, request):
        agent = self._agent(request)
        self.api.check_all_outlets(request)
        seq = await asyncio.to_thread(agent.log.retry)
        agent.wake()
        payload = await asyncio.to_thread(summary, agent)
        payload["restarted_at_seq"] = seq
        return json_response(200, {"status": "ok", "code": "SYNC_RESTARTED", "payload": payload})


def summary(agent):
    """What /api/v1/sync and /status say about the sync."""
    st = agent.log.state()
    pending, queued, failed = agent.log.backlog()
    return {"authority": agent.url, "acknowledged_seq": st["acked_seq"], "pending_records": pending,
            "queued_invoices": queued, "failed_invoices": failed,
            "stopped_at_seq": st["failed_seq"], "failures": st["failures"], "last_error": st["last_error"],
            "last_success": _iso(st["last_success"]), "last_attempt": _iso(st["last_attempt"])}


def _iso(stamp):
    return None if stamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
