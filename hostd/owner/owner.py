"""The device owner: one thread, one open port, every device transaction serialised through it.

POS requests queue here and never touch the port themselves (trezord's lesson, DESIGN-NOTES
section 6). The owner reconnects by itself: any link failure closes the port, and the next job
reopens it, handshakes (flush, PING, INFO), sets the clock and reconciles the store with the
journal before doing anything else (hostd/owner/reconcile.py).

Sealing is a small state machine on the ``requests`` row, advanced one durable step at a time:
``new`` -PREPARE-> ``prepared(nonce)`` -COMMIT-> ``done(response)``. Every device call carries the
row's request id (protocol 2: ``request_id_for(key)``, stored on the row first), which the device
signs into the invoice record. Whatever was interrupted (timeout, lost link, daemon killed), the
next attempt starts from the row: a prepared request is first asked about with STATUS by request
id, never committed blindly, so nothing is sealed twice or lost.
"""

import concurrent.futures
import json
import logging
import os
import signal
import sqlite3
import time

from protocol import invoice, messages, record, timefmt
from protocol.error_table import ERRORS
from device.identity import IDENTITY_FAULTS
from hostd.books import envelope
from hostd.link import discovery
from hostd.link.client import DeviceClient
from hostd.errors import DeviceBusy, DeviceRefused, DeviceUnavailable, HostdError, StoreUnavailable
from hostd.books.export import build_export, dump_export
from hostd.owner.reconcile import Reconciler
from hostd.owner.slots import Slots
from hostd.owner.watch import DeviceWatch

RETRY_STATES = (messages.UNKNOWN, messages.EXPIRED, messages.ABORTED)
NONCE_CODES = {messages.UNKNOWN: "NONCE_UNKNOWN", messages.EXPIRED: "NONCE_EXPIRED", messages.ABORTED: "NONCE_ABORTED"}
# Device refusals that are the final answer for an invoice (its content, or a device that will
# not seal again); every other refusal is transient and is never stored as the answer to a key.
FINAL_REFUSALS = tuple(name for code, (name, family, _) in ERRORS.items()
                       if family == "invoice" and name != "CHUNK_SEQUENCE") + ("JOURNAL_FULL", "JOURNAL_CORRUPT",
                                                                                   "REQUEST_ID_REUSED")
TWO_PHASE = "2p:"   # request keys of the two-phase API: the POS holds the nonce
SEAL_BUDGET = 15.0  # seconds a POS request may wait for the device before it is told to retry
log = logging.getLogger("fiscal.owner")


class Owner(Reconciler):
    def __init__(self, device_path, store, timeout=2.0, client_factory=DeviceClient, prepare_share=None):
        self.path = device_path
        self.store = store
        self.slots = Slots(store, prepare_share)
        self.watch = DeviceWatch(store)
        self.on_event = None   # set by the daemon: wakes the webhook dispatcher
        self.timeout = timeout
        self.client_factory = client_factory
        self.client = None
        self.info = None
        self.last_error = None
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="device-owner")
        # Crash-test hook: SIGKILL ourselves at a named step (tests/test_daemon_crash.py).
        self.crash_at = os.environ.get("FISCAL_TEST_CRASH_AT")

    def _crash_point(self, name):
        if self.crash_at == name:
            os.kill(os.getpid(), signal.SIGKILL)

    def run(self, fn, *args):
        """Queue ``fn(*args)`` on the owner thread; returns a concurrent.futures.Future."""
        return self.executor.submit(self._job, fn, args)

    def _job(self, fn, args):
        if self.slots.orphans and self.client is not None:
            self.slots.release(self.call, time.monotonic() + 2.0)
        return fn(*args)

    def close(self):
        self.executor.shutdown(wait=True)
        self._drop()

    # -- connection ------------------------------------------------------------------------------
    @property
    def lost_since(self):
        return self.watch.lost_since

    def _drop(self, reason=None):
        if self.client is not None:
            if reason is not None:   # None: closing at shutdown; otherwise the watch logs and announces it
                self.watch.lost(self.info["device_id"] if self.info else None, reason)
            try:
                self.client.close()
            except OSError as exc:   # the port may already be gone with the device
                self.last_error = "closing: %s" % exc
            self.client = None

    def device(self, deadline):
        """The connected client, reconnecting (handshake, clock, reconcile) until ``deadline``.

        Whatever goes wrong while connecting (including a device refusal of SET_TIME) is reported
        as DEVICE_UNAVAILABLE: it says nothing about any invoice, so it must never become a
        stored answer.
        """
        while self.client is None:
            try:
                self._connect()
                self.last_error = None
            except (DeviceUnavailable, DeviceRefused) as exc:
                self.last_error = exc.detail
                self.watch.lost(self.info["device_id"] if self.info else None, exc.detail)
                if time.monotonic() >= deadline:
                    raise DeviceUnavailable("device unavailable: %s" % exc.detail)
                time.sleep(0.2)
        return self.client

    def _connect(self):
        # ``auto`` and ``serial:<SERIAL>`` are looked up again at every attempt: a board plugged in
        # (or moved to another port) after the daemon started is found by this reconnect loop.
        port = discovery.resolve(self.path)
        client = self.client_factory(port, timeout=self.timeout, on_sent=self._sent)
        try:
            self.info = client.handshake()
            if self.info["fault"] in IDENTITY_FAULTS:
                raise DeviceUnavailable("device on %s is read-only (%s): its key and journal do not belong "
                                        "together; do not provision it again, keep it for the audit"
                                        % (port, self.info["fault"]))
            if not self.info["public_key"]:
                raise DeviceUnavailable("device on %s has no key yet: run `fiscal board provision --device %s "
                                        "--authority DIR` before serving" % (port, self.path))
            # The device refuses a clock before its last record (a host clock behind a drifting
            # board clock): never ask for that; the device clock keeps running from there.
            client.set_time(max(int(time.time()), self.info["last_time"]))
            self.client = client
            log.info("device %s connected on %s: counter %d, %d records%s", self.info["device_id"], port,
                     self.info["counter"], self.info["seq"], ", fault %s" % self.info["fault"] if self.info["fault"] else "")
            self.reconcile()
            self.watch.on_event = self.on_event
            self.watch.found(self.info)
        except BaseException:
            self.client = None
            client.close()
            raise

    def _sent(self, name):
        if name == "COMMIT":
            self._crash_point("after_commit_sent")

    def call(self, deadline, name, **fields):
        """One device call; a lost link drops the port so the next call reconnects."""
        client = self.device(deadline)
        try:
            return client.call(name, **fields)
        except DeviceUnavailable as exc:
            self._drop(exc.detail)
            raise

    # -- sealing -----------------------------------------------------------------------------------
    def seal(self, key, budget):
        """Advance request ``key`` to done; returns (http status, response bytes).

        Only two outcomes leave here for a request the device may have sealed: the stored answer,
        or DEVICE_UNAVAILABLE (nothing stored, the POS retries with the same key).
        """
        deadline = time.monotonic() + budget
        fresh = None   # a nonce PREPAREd by this very call needs no STATUS before its COMMIT
        while True:
            row = self.store.request(key)
            if row["state"] == "done":
                return row["status"], row["response"]
            if time.monotonic() >= deadline:
                raise DeviceUnavailable("the invoice could not be sealed within %.0f s; retry with the "
                                        "same Idempotency-Key" % budget)
            try:
                if row["state"] == "prepared" and row["nonce"] == fresh:
                    self._commit(row, deadline)
                elif row["state"] == "prepared":
                    self._recover(row, deadline)
                else:
                    fresh = self._prepare(row, deadline)
            except DeviceUnavailable:
                fresh = None   # after a timeout or a lost link: ask STATUS, never COMMIT blindly
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def seal_many(self, keys, budget):
        """``seal`` each request in order, one job: [(http status, response bytes)]. A request the
        device cannot take now answers its own error envelope; the others go on."""
        out = []
        for key in keys:
            try:
                out.append(self.seal(key, budget))
            except HostdError as exc:
                out.append(envelope.error_of(exc)[:2])
        return out

    def _refused(self, row, exc):
        """Store a refusal only when it is final for this invoice; otherwise raise a retryable error."""
        if exc.name in FINAL_REFUSALS:
            self.store.set_failed(row["key"], 422, envelope.error_body(
                "FISCALIZATION_FAILED", exc.device_detail, device_code=exc.name))
        elif exc.name == "TOO_MANY_PENDING":
            raise DeviceBusy("the device has its maximum of open PREPAREs; retry shortly")
        else:
            raise DeviceUnavailable("device refused %s: %s" % (exc.name, exc.device_detail))

    def _request_id(self, row):
        """The row's device request id, stored before any device call carries it."""
        if row["request_id"] is None:
            self.store.set_request_id(row["key"], record.request_id_for(row["key"]))
        return record.request_id_for(row["key"])

    def _prepare(self, row, deadline):
        rid = self._request_id(row)
        client = self.device(deadline)
        try:
            answer = client.prepare(row["canonical"], rid)
        except DeviceRefused as exc:
            self._refused(row, exc)
            return None
        except DeviceUnavailable as exc:
            self._drop(exc.detail)
            raise
        if answer.get("replayed"):   # the device sealed this request id already
            self.reconcile_one(row, answer["sealed"])
            return None
        nonce = answer["nonce"]
        try:
            self.store.set_prepared(row["key"], nonce, time.time())
        except sqlite3.Error as exc:
            # The device holds a slot nobody will commit: give it back now, not at nonce expiry.
            self.slots.orphan(nonce)
            self.slots.release(self.call, deadline)
            raise StoreUnavailable("the store cannot record the PREPARE (%s); nothing was sealed, retry with the "
                                   "same Idempotency-Key" % exc)
        self._crash_point("after_prepare")
        return answer["nonce"]

    def _recover(self, row, deadline):
        """A request from an interrupted attempt: ask the device what became of it, by request
        id (answered from the journal, so also after a device power cut)."""
        answer = self.call(deadline, "STATUS", request_id=self._request_id(row))
        if answer["state"] == messages.COMMITTED:
            self.reconcile_one(row, answer["sealed"])
        elif answer["state"] == messages.PREPARED and answer["nonce"] == row["nonce"]:
            self._commit(row, deadline)
        else:
            self._retry_or_fail(row, "NONCE_UNKNOWN" if answer["state"] == messages.UNKNOWN
                                else NONCE_CODES.get(answer["state"], "NONCE_UNKNOWN"))

    def _commit(self, row, deadline):
        try:
            answer = self.call(deadline, "COMMIT", nonce=row["nonce"])
        except DeviceRefused as exc:
            if exc.name in NONCE_CODES.values():
                self._retry_or_fail(row, exc.name)
            else:
                self._refused(row, exc)
            return
        self._crash_point("after_commit_answered")
        self.reconcile_one(row, answer["sealed"])

    def _retry_or_fail(self, row, code):
        """The nonce is gone without a seal: a one-shot request PREPAREs again (same invoice bytes);
        a two-phase request whose POS holds that nonce fails with the reason."""
        if row["key"].startswith(TWO_PHASE):
            self.store.set_failed(row["key"], 422, envelope.error_body(
                "FISCALIZATION_FAILED", "the nonce is %s: PREPARE the invoice again"
                % code[len("NONCE_"):].lower(), device_code=code))
        else:
            self.store.reset_request(row["key"])

    # -- the other device operations of the API ----------------------------------------------------
    def prepare(self, key, budget):
        """Two-phase PREPARE: advance the row to ``prepared`` and return what the POS shows."""
        deadline = time.monotonic() + budget
        row = self.store.request(key)
        if row["state"] == "new":
            self.device(deadline)
            self.slots.check(TWO_PHASE, row, self.info, time.time())
            self._prepare(row, deadline)
            row = self.store.request(key)
        if row["state"] == "done":
            if row["status"] == 200:
                raise DeviceRefused(0, "NONCE_COMMITTED", "this request is already sealed")
            stored = json.loads(row["response"])
            raise DeviceRefused(0, stored.get("device_code", "REFUSED"), stored["detail"])
        answer = self.call(deadline, "STATUS", nonce=row["nonce"])
        return {"nonce": row["nonce"].hex(), "state": messages.STATE_NAMES[answer["state"]],
                "expires": answer.get("expires"), "summary": invoice_summary(row["canonical"])}

    def abort(self, key, budget):
        """Two-phase ABORT; idempotent, and it never overwrites a final answer."""
        row = self.store.request(key)
        if row["state"] == "done":
            if row["status"] == 200:
                raise DeviceRefused(0, "NONCE_COMMITTED", "the invoice is already sealed; issue a credit note")
            return "aborted"
        answer = self.call(time.monotonic() + budget, "ABORT", nonce=row["nonce"])
        self.store.set_failed(key, 422, envelope.error_body("FISCALIZATION_FAILED", "the invoice was aborted",
                                                            device_code="NONCE_ABORTED"))
        return messages.STATE_NAMES[answer["state"]]

    def status(self, budget):
        """Live device state for the outlet status endpoint; never raises for a missing device."""
        try:
            info = self.call(time.monotonic() + budget, "INFO")
        except (DeviceUnavailable, DeviceRefused) as exc:
            last = self.info or {}
            return {"device_state": "unavailable", "detail": exc.detail, "counter": last.get("counter"),
                    "device_id": last.get("device_id")}
        self.info = info
        self.watch.seen(info)
        return {"device_state": "faulty" if info["fault"] else "ready", "fault": info["fault"] or None,
                "device_id": info["device_id"], "counter": info["counter"], "records": info["seq"],
                "clock": info["clock"], "pending": info["pending"], "max_pending": info["max_pending"],
                "journal_used": info["journal_used"], "journal_size": info["journal_size"],
                "journal_fill": round(info["journal_used"] / info["journal_size"], 6),
                "firmware": info["firmware"]}

    def export(self, budget, challenge=b""):
        """Sync the journal mirror with the device, then the verifiable export file (bytes),
        ending in a head the device signs now (over ``challenge``)."""
        deadline = time.monotonic() + budget
        self.device(deadline)
        self.info = self.call(deadline, "INFO")
        self.reconcile()
        head = self.call(deadline, "HEAD", challenge=challenge)
        return dump_export(build_export(self.store.journal(), self.info, head, timefmt.format_time(int(time.time()))))


def invoice_summary(canonical):
    summary = invoice.decode(canonical)[1]
    return {"subtotal": summary["subtotal"], "total_vat": summary["total_vat"], "total": summary["total"],
            "currency": summary["currency"], "tax_groups": summary["groups"]}
