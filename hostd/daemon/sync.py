"""The sync agent (issue 12, seed 002 "Sync Agent"): uploads the journal to the authority.

One task on the daemon's event loop, like the webhook dispatcher: the owner files invoices and
mirrors records, then wakes this task; it reads what the authority does not hold yet from the
store (hostd/store/sync.py) and POSTs it in chain order (hostd/books/upload.py, docs/SYNC.md),
at most ``BATCH`` records at a time, through aiohttp's client. It never holds the device or a
POS request, so an unreachable authority never slows sealing.

How each answer is taken:

- 200: the acknowledged records' hashes must be the mirror's; their invoices become ``synced``;
- SYNC_GAP (409): the authority holds another length of the chain than the cursor says; ask it
  for its head (GET /api/v1/devices/{id}) and resume from there (fast-forward when the head's
  hash is the mirror's, resend when the authority holds less);
- another typed refusal naming a record after the first one sent: resend the records before it
  alone (they are accepted), so the refusal is pinned to its record; one naming the first record
  counts against ``max_retries``, after which sync stops there and the invoices from there on are
  ``failed`` (hostd/store/sync.py);
- no answer, a 5xx, or a body that is not an answer: the authority is unreachable; the invoices
  stay ``queued`` and the upload is retried after ``base x 2^(n-1)`` seconds (at most ``cap``,
  times a random factor in [0.5, 1.5), as webhook retries are).
"""

import asyncio
import binascii
import json
import logging
import time

import ssl
import urllib.parse

import aiohttp

from hostd.books import events, upload
from hostd.daemon.listeners import is_loopback
from hostd.errors import ConfigError
from hostd.store.sync import SyncLog
from hostd.daemon.retrying import Retrying

log = logging.getLogger("fiscal.sync")

BATCH = upload.MAX_RECORDS
TIMEOUT = 30.0


def _loopback(host):
    try:
        return host == "localhost" or is_loopback(host)
    except ValueError:   # a name other than localhost: not known to be loopback
        return False


def target(url, ca_file=None):
    """(base URL, client TLS context or None) of ``--sync-url``: HTTPS, or plain HTTP to a loopback
    address only (records and certificates are public, but an outlet must know whom it talks to).
    ``ca_file`` trusts the authority's own CA (or self-signed certificate) besides the system's."""
    parts = urllib.parse.urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError("--sync-url must be an http(s)://host[:port][/path] URL, not %r" % url, field="--sync-url")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ConfigError("--sync-url %s: plain HTTP only to a loopback address; use https://" % url,
                          field="--sync-url")
    if ca_file is not None and parts.scheme != "https":
        raise ConfigError("--sync-ca needs an https:// --sync-url", field="--sync-ca")
    context = None
    if parts.scheme == "https":
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("cannot load --sync-ca %s: %s" % (ca_file, exc), field="--sync-ca")
    return url.rstrip("/"), context


class Syncer(Retrying):
    def __init__(self, store, url, ssl_context=None, max_retries=5, base=2.0, cap=300.0, archive=None,
                 on_event=None):
        """``on_event`` is called after sync events were stored (it wakes the webhook dispatcher)."""
        self.store = store
        self.on_event = on_event or (lambda: None)
        self.log = SyncLog(store, archive)
        self.url = url.rstrip("/")
        self.ssl = ssl_context
        self.max_retries = max_retries
        self.base, self.cap = base, cap
        self.loop = self.wakeup = None
        self.outage = 0          # consecutive attempts without an answer
        self.limit = BATCH       # shrunk to pin a refusal on its record
        self.resumed = False
        self.retry_at = 0.0

    async def run(self):
        self.loop = asyncio.get_running_loop()
        self.wakeup = asyncio.Event()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
            while True:
                self.awake()
                busy = False
                if time.time() >= self.retry_at:
                    busy = await self.step(session)
                if busy:
                    continue
                await self.sleep(max(0.05, min(5.0, self.retry_at - time.time())) if self.retry_at > time.time() else 5.0)

    def _device(self):
        device = self.store.meta("device")
        if not device:
            return None, None
        cert = device.get("certificate")
        return device["device_id"], None if cert is None else binascii.unhexlify(cert)

    async def step(self, session):
        """One upload (or head lookup); True when there may be more to do at once."""
        device_id, cert = await asyncio.to_thread(self._device)
        if device_id is None:
            return False
        state = await asyncio.to_thread(self.log.state)
        if state["failed_seq"] is not None:
            if await asyncio.to_thread(self.log.fail_new, time.time(), _failed_event):
                self.on_event()
            return False
        if not self.resumed:
            return await self._resume(session, device_id)
        rows = await asyncio.to_thread(self.log.pending, self.limit)
        if not rows:
            return False
        doc = upload.build(device_id, cert, rows)
        status, answer = await self._call(session, "POST", "/api/v1/devices/%s/records" % device_id, doc)
        if status is None:
            return False
        sent = [seq for seq, _, _ in rows]
        if status == 200:
            try:
                acked, stamp = upload.read_ack(answer, sent)
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                await self._unreachable("the authority's answer is not an acknowledgement (%s)" % exc)
                return False
            synced = await asyncio.to_thread(self.log.acknowledge, device_id, acked, stamp, time.time(),
                                             _synced_event)
            self.limit = BATCH
            if synced:
                self.on_event()
            return True
        code = answer.get("code") if isinstance(answer, dict) else None
        if code == "SYNC_GAP":
            self.resumed = False
            return True
        seq = answer.get("seq") if isinstance(answer, dict) else None
        detail = "%s %s: %s" % (status, code, answer.get("detail") if isinstance(answer, dict) else answer)
        if isinstance(seq, int) and sent[0] < seq <= sent[-1]:
            self.limit = seq - sent[0]   # the records before the refused one go alone
            return True
        log.error("the authority refused record %d: %s", sent[0], detail)
        failed = await asyncio.to_thread(self.log.refused, sent[0], detail, self.max_retries, time.time(),
                                         _failed_event)
        if failed:
            log.error("sync stopped at record %d after %d refusals (POST /api/v1/sync/retry starts it again)",
                      sent[0], self.max_retries)
            self.on_event()
        self.retry_at = time.time() + self.delay(min(8, (await asyncio.to_thread(self.log.state))["failures"]))
        return False

    async def _resume(self, session, device_id):
        """Align the cursor with the head the authority holds."""
        status, answer = await self._call(session, "GET", "/api/v1/devices/%s" % device_id)
        if status is None:
            return False
        mine = await asyncio.to_thread(self.log.state)
        if status == 404:
            head_seq, head_hash = 0, None
        elif status == 200 and isinstance(answer, dict) and isinstance(answer.get("head"), dict):
            head_seq, head_hash = answer["head"]["seq"], binascii.unhexlify(answer["head"]["hash"])
        else:
            await self._unreachable("GET device answered %s" % status)
            return False
        if head_seq < mine["acked_seq"]:
            log.warning("the authority holds %s up to record %d, not %d: sending again from %d", device_id, head_seq,
                        mine["acked_seq"], head_seq + 1)
            await asyncio.to_thread(self.log.rewind, head_seq, head_hash)
        elif head_seq > mine["acked_seq"]:
            hashes = await asyncio.to_thread(self.log.mirror_hashes, mine["acked_seq"] + 1, head_seq)
            if not hashes or hashes[-1] != (head_seq, head_hash) or len(hashes) != head_seq - mine["acked_seq"]:
                await asyncio.to_thread(self.log.refused, head_seq, "the authority holds a record %d this store does "
                                        "not have with that hash" % head_seq, 1, time.time(), _failed_event)
                log.error("the authority's head %d is not in this store's mirror: sync stopped", head_seq)
                return False
            synced = await asyncio.to_thread(self.log.acknowledge, device_id, hashes, _now_text(), time.time(),
                                             _synced_event)
            if synced:
                self.on_event()
        self.resumed = True
        return True

    async def _call(self, session, method, path, doc=None):
        """(status, JSON answer) or (None, None) when the authority did not answer usefully."""
        try:
            kwargs = {"ssl": self.ssl} if self.ssl is not None else {}
            if doc is not None:
                kwargs["data"] = json.dumps(doc, separators=(",", ":")).encode()
                kwargs["headers"] = {"Content-Type": "application/json"}
            async with session.request(method, self.url + path, allow_redirects=False, **kwargs) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            await self._unreachable("%s: %s" % (type(exc).__name__, exc))
            return None, None
        if status >= 500:
            await self._unreachable("HTTP %d" % status)
            return None, None
        try:
            answer = json.loads(body)
        except ValueError:
            await self._unreachable("HTTP %d with a body that is not JSON" % status)
            return None, None
        if self.outage:
            log.info("the authority answers again after %d failed attempts", self.outage)
        self.outage = 0
        return status, answer

    async def _unreachable(self, error):
        self.outage += 1
        self.resumed = False
        if self.outage == 1 or self.outage % 10 == 0:
            log.warning("the authority at %s is unreachable (%s); invoices stay queued", self.url, error)
        self.retry_at = time.time() + self.delay(min(self.outage, 12))
        await asyncio.to_thread(self.log.unreachable, error, time.time())


def _synced_event(row, stamp):
    return events.SYNC_SUCCESS, events.invoice_synced(row, stamp)


def _failed_event(row, error, attempts):
    return events.SYNC_FAILED, events.invoice_sync_failed(row, error, attempts)


def _now_text():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
