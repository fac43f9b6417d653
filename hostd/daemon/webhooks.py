"""The webhook dispatcher (issue 12): delivers the outbox (hostd/store/outbox.py) over HTTP.

It runs as one task on the daemon's event loop with aiohttp's client, so delivering never holds
the device owner or a POS request: the owner only writes outbox rows (in the filing transaction)
and wakes the dispatcher. Store calls run in worker threads (each with its own SQLite
connection), never on the loop.

Each attempt POSTs the event's JSON with Standard Webhooks headers (hostd/books/signing.py) and,
when the subscription names one, the seed's HMAC header. Outcomes:

- 2xx: delivered;
- 410 Gone: the receiver asked to stop; the subscription is switched off (``active`` false,
  ``disabled_reason`` says when and why) and its pending deliveries end as ``gone``;
- anything else (another status, a timeout, a refused connection): retried after
  ``base x 2^(attempt-1)`` seconds, at most ``cap``, times a random factor in [0.5, 1.5) (jitter,
  so receivers coming back are not hit by every sender at once); after ``max_attempts`` the
  delivery is ``dead`` (the dead-letter state), kept with its attempts for the log.

A delivery interrupted by a crash is sent again with the same ``webhook-id``.
"""

import asyncio
import json
import logging
import time

import aiohttp

from hostd.books import events, signing
from hostd.store.outbox import Outbox
from hostd.daemon.retrying import Retrying

log = logging.getLogger("fiscal.webhooks")

TIMEOUT = 10.0
PARALLEL = 8


class Dispatcher(Retrying):
    def __init__(self, store, base=2.0, cap=3600.0, offline_grace=300.0, owner=None):
        self.outbox = Outbox(store)
        self.store = store
        self.base = base
        self.cap = cap
        self.offline_grace = offline_grace
        self.owner = owner
        self.loop = None
        self.wakeup = None
        self.alerted_outage = None

    async def run(self):
        self.loop = asyncio.get_running_loop()
        self.wakeup = asyncio.Event()
        limit = asyncio.Semaphore(PARALLEL)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
            while True:
                self.awake()
                await self._offline_alert()
                due = await asyncio.to_thread(self.outbox.due, time.time())
                if due:
                    await asyncio.gather(*(self._guarded(limit, session, d) for d in due))
                    continue
                upcoming = await asyncio.to_thread(self.outbox.next_due)
                await self.sleep(5.0 if upcoming is None else max(0.0, min(5.0, upcoming - time.time())))

    async def _guarded(self, limit, session, delivery):
        async with limit:
            await self.deliver(session, delivery)

    async def deliver(self, session, delivery):
        payload = json.loads(delivery["payload"])
        payload["event"] = delivery["event_name"]
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        stamp = int(time.time())
        headers = signing.headers(delivery["secret"], delivery["id"], stamp, body, delivery["signature_header"])
        headers["Content-Type"] = "application/json"
        number = delivery["attempts"] + 1
        started = time.monotonic()
        status = error = None
        try:
            async with session.post(delivery["url"], data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = "%s: %s" % (type(exc).__name__, exc)
        ms = (time.monotonic() - started) * 1000
        now = time.time()
        if status is not None and 200 <= status < 300:
            state, next_at, disable = "delivered", None, None
        elif status == 410:
            state, next_at = "gone", None
            disable = "the receiver answered 410 Gone at %s" % time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
            log.warning("webhook %s answered 410: subscription switched off", delivery["webhook_id"])
        elif number >= delivery["max_attempts"]:
            state, next_at, disable = "dead", None, None
            log.warning("webhook delivery %s dead after %d attempts (%s)", delivery["id"], number, error or status)
        else:
            state, next_at, disable = "pending", now + self.delay(number), None
        await asyncio.to_thread(self.outbox.record_attempt, delivery, number, now, status,
                                error if status is None else (None if state == "delivered" else "HTTP %d" % status),
                                ms, state, next_at, disable)

    async def _offline_alert(self):
        """``outlet.offline_alert`` once per outage that lasts past the grace period: requests
        waited for a device that did not answer (seed 001: drafts exceed the grace period)."""
        owner = self.owner
        since = getattr(owner, "lost_since", None) if owner is not None else None
        if since is None or time.time() - since < self.offline_grace or self.alerted_outage == since:
            return
        self.alerted_outage = since
        waiting, oldest = await asyncio.to_thread(self.store.waiting_requests, since)
        device = (owner.info or {}).get("device_id")
        await asyncio.to_thread(self.outbox.emit, events.OFFLINE_ALERT, events.device_event(
            events.OFFLINE_ALERT, device, outlet_id=None, draft_count=waiting,
            oldest_draft_age=None if oldest is None else int(time.time() - oldest),
            offline_since=int(since)), time.time())
