"""``GET /sdk/fiscal.mjs`` (issue 14): the browser SDK, served by the daemon it talks to.

A web POS imports the module from the daemon's own TCP listener
(``import {Client} from "http://127.0.0.1:8787/sdk/fiscal.mjs"``), so the SDK a page runs is
always the one of the daemon it calls. It is public code and needs no token (a ``<script
type="module">`` cannot send one). Module scripts are fetched in CORS mode, so the page's origin
must be allowed with ``--cors-origin`` like any other request from it (hostd/api/cors.py).

The file is package data of ``hostd.sdk`` (``hostd/sdk/browser/fiscal.mjs``, listed in setup.py's
package_data), read through importlib.resources as bytes, never imported: hostd.api sits below
hostd.sdk in the rooms (docs/ARCHITECTURE.md), and this is a file it hands out, not code it runs.
``Cache-Control: no-cache`` makes a browser revalidate, so a daemon upgrade reaches the page;
the ETag lets it do so without downloading the module again.
"""

import hashlib
from importlib import resources

from aiohttp import web

from hostd.api.replies import Resource

PACKAGE, NAME = "hostd.sdk", "browser/fiscal.mjs"


def module_bytes():
    return resources.files(PACKAGE).joinpath(NAME).read_bytes()


class Scripts(Resource):
    def __init__(self, api):
        Resource.__init__(self, api)
        self.body = None
        self.etag = None

    def routes(self):
        return [web.get("/sdk/fiscal.mjs", self.fiscal_mjs)]

    async def fiscal_mjs(self, request):
        if self.body is None:   # read once, at the first request: the daemon serves what it was installed with
            self.body = module_bytes()
            self.etag = '"%s"' % hashlib.sha256(self.body).hexdigest()[:32]
        headers = {"Cache-Control": "no-cache", "ETag": self.etag, "X-Content-Type-Options": "nosniff"}
        if self.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, content_type="text/javascript", charset="utf-8", headers=headers)
