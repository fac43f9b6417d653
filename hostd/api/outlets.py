"""Outlet and manifest endpoints: the device status of an outlet and the tax-group manifest."""

import asyncio

from aiohttp import web

from hostd.api.replies import Resource, json_response
from hostd.api.sync import summary as sync_summary
from protocol import profile_host, taxgroups

DEVICE = "local"   # /outlets/local/status: the device itself, for any token (fiscal status)


class Outlets(Resource):
    def routes(self):
        return [
            web.get("/api/v1/tax-groups", self.tax_groups),
            web.get("/api/v1/outlets/{outlet_id}/status", self.status),
        ]

    async def tax_groups(self, request):
        self.api.authorise(request)
        groups = [{"code": c, "name": n, "rate": "%d.%06d" % divmod(r, taxgroups.PPM), "rate_ppm": r,
                   "effective_from": e} for c, n, r, e in profile_host.default()["groups"]]
        return json_response(200, {"status": "ok", "code": "TAX_GROUPS", "payload": groups})

    async def status(self, request):
        self.api.authorise(request)
        if request.match_info["outlet_id"] != DEVICE:
            self.api.check_outlet(request, request.match_info["outlet_id"])
        info = await self.api.device(self.owner.status, 2.0)
        info["outlet_id"] = request.match_info["outlet_id"]
        count, rows = self.store.quarantined()
        info["quarantined"] = {"count": count, "records": [
            {"seq": r["seq"], "fiscal_number": r["fiscal_number"], "reason": r["reason"]} for r in rows]}
        if self.api.sync is not None:
            info["sync"] = await asyncio.to_thread(sync_summary, self.api.sync)
        newest = self.owner.closures.newest("Z")
        closer = self.api.closer
        info["closures"] = {"last_z": None if newest is None else {"period": newest["period"], "seq": newest["seq"]},
                            "close_at": None if closer is None else "%02d:%02d" % divmod(closer.at, 60),
                            "missing_z": [] if closer is None else list(closer.missing)}
        return json_response(200, {"status": "ok", "code": "OUTLET_STATUS", "payload": info})
