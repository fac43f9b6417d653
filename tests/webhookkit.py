"""A real webhook receiver for the tests: an aiohttp server on 127.0.0.1 in its own thread,
recording every delivery and answering with scripted statuses."""

import asyncio
import threading
import time

from aiohttp import web


class Receiver:
    def __init__(self, statuses=None):
        self.deliveries = []          # (headers dict, body bytes, answered status)
        self.statuses = list(statuses or [])
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _hook(self, request):
        body = await request.read()
        status = self.statuses.pop(0) if self.statuses else 200
        self.deliveries.append((dict(request.headers), body, status))
        return web.Response(status=status, text="ok")

    @property
    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def wait_for(self, predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.deliveries):
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
