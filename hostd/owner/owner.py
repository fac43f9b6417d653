"""The device owner: one thread, one open port, every device transaction serialised through it.

POS requests queue here and never touch the port themselves (trezord's lesson, DESIGN-NOTES
section 6). The owner reconnects by itself: any link failure closes the port, and the next job
reopens it, handshakes (flush, PING, INFO), sets the clock and reconciles the store with the
journal before doing anything else (hostd/owner/reconcile.py).

The owner's other duties are mixed in from the modules that own them: sealing and the two-phase
flow (hostd/owner/sealing.py), group commit of queued one-call seals (hostd/owner/batching.py),
credit notes (hostd/owner/credits.py), archiving and the export (hostd/owner/archiving.py),
closures (hostd/owner/closing.py), reconciliation (hostd/owner/reconcile.py). After each job it
checks whether the journal needs archiving and files new closures.
"""

import concurrent.futures
import logging
import os
import signal
import threading
import time

from device.core import IDENTITY_FAULTS
from hostd.errors import DeviceRefused, DeviceUnavailable, HostdError
from hostd.link import discovery
from hostd.link.client import DeviceClient
from hostd.owner.archiving import CHECK_EVERY, DEFAULT_ARCHIVE_AT, Archiving, seals_before_mark
from hostd.owner.batching import Batching
from hostd.owner.closing import Closing
from hostd.owner.credits import CreditBooks, Crediting
from hostd.store.closures import Closures
from hostd.owner.reconcile import Reconciler
from hostd.owner.sealing import TWO_PHASE, Sealing
from hostd.owner.slots import Slots
from hostd.owner.watch import DeviceWatch

SEAL_BUDGET = 15.0  # seconds a POS request may wait for the device before it is told to retry
log = logging.getLogger("fiscal.owner")


__all__ = ("Owner", "SEAL_BUDGET", "TWO_PHASE")


class Owner(Sealing, Batching, Crediting, Archiving, Closing, Reconciler):
    def __init__(self, device_path, store, timeout=2.0, client_factory=DeviceClient, prepare_share=None,
                 archive=None, archive_at=DEFAULT_ARCHIVE_AT, bundles_dir=None):
        """``archive`` (hostd/store/archive.py) enables archive-and-reclaim at ``archive_at`` ppm;
        closure bundles go to ``bundles_dir`` (hostd/owner/closing.py)."""
        self.path = device_path
        self.store = store
        self.archive = archive
        self.archive_at = archive_at
        self.closures = Closures(store)
        self.bundles_dir = bundles_dir
        self.scanned = 0   # journal records note() has passed over (hostd/owner/closing.py)
        self.sealed_since_check = 0
        self.check_every = CHECK_EVERY   # seals before the next INFO check (hostd/owner/archiving.py)
        self.journal_full = False
        self.slots = Slots(store, prepare_share)
        self.books = CreditBooks(store, archive)   # the leaves of the device's credit tree (owner/credits.py)
        self.watch = DeviceWatch(store)
        self.on_event = None   # set by the daemon: wakes the webhook dispatcher (and the sync agent)
        self.erase_limit = None   # set when syncing: () -> the last seq the authority holds
        self.timeout = timeout
        self.client_factory = client_factory
        self.client = None
        self.info = None
        self.last_error = None
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="device-owner")
        self._jobs_lock = threading.Lock()
        self._jobs_queued = 0
        self._group_init()
        # Crash-test hook: SIGKILL ourselves at a named step (tests/test_daemon_crash.py).
        self.crash_at = os.environ.get("FISCAL_TEST_CRASH_AT")

    def _crash_point(self, name):
        if self.crash_at == name:
            os.kill(os.getpid(), signal.SIGKILL)

    def run(self, fn, *args):
        """Queue ``fn(*args)`` on the owner thread; returns a concurrent.futures.Future."""
        with self._jobs_lock:
            self._jobs_queued += 1
        try:
            future = self.executor.submit(self._job, fn, args)
        except BaseException:   # shut down: that job never waits
            self._job_left()
            raise
        # a job cancelled before it started never runs _job: it waits no more either
        future.add_done_callback(lambda f: f.cancelled() and self._job_left())
        return future

    def jobs_waiting(self):
        """How many owner jobs are queued and not started (a drain gives way to them)."""
        return self._jobs_queued

    def _job_left(self):
        with self._jobs_lock:
            self._jobs_queued -= 1

    def _job(self, fn, args):
        self._job_left()
        if self.slots.orphans and self.client is not None:
            try:
                self.slots.release(self.call, time.monotonic() + 2.0)
            except Exception:   # the job must run all the same: a drain that never ran would strand its queue
                log.exception("releasing orphan nonces failed; tried again before the next job")
        try:
            return fn(*args)
        finally:
            self._after_job()

    def _after_job(self):
        """Archive when due and file new closures and technical records; their failures are
        logged and retried later, never the job's answer."""
        try:
            self.maybe_archive(time.monotonic() + 30.0)
        except (HostdError, OSError) as exc:
            log.error("archiving failed, retried after the next seals: %s", getattr(exc, "detail", exc))
            self.sealed_since_check = 0
        try:
            self.note()
        except (HostdError, OSError) as exc:
            log.error("filing closures and the technical log failed, retried after the next job: %s",
                      getattr(exc, "detail", exc))

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
        self.group_seconds = self.answer_fits = None   # another device may answer now (batching.py _depth)
        try:
            self.info = client.handshake()
            self.check_every = seals_before_mark(self.info, self.archive_at)   # hostd/owner/archiving.py
            if self.info["fault"] in IDENTITY_FAULTS:
                raise DeviceUnavailable("device on %s is read-only (%s): its key and journal do not belong "
                                        "together; do not provision it again, keep it for the audit"
                                        % (port, self.info["fault"]))
            if not self.info["public_key"]:
                raise DeviceUnavailable("device on %s has no key yet: run `fiscal board provision --device %s "
                                        "--authority DIR` before serving" % (port, self.path))
            # The device refuses a clock before its last record (a host clock behind a drifting
            # board clock): never ask for that; the device clock keeps running from there.
            try:
                client.set_time(max(int(time.time()), self.info["last_time"]))
            except DeviceRefused as exc:
                if exc.name != "JOURNAL_FULL":
                    raise
                # A full device cannot journal the clock: serve read-only (INFO, READ_JOURNAL, the
                # export), and archive at once so it can seal again.
                log.warning("device journal full: connected read-only until it is archived (%s)", exc.device_detail)
                self.journal_full = True
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
        if name in ("COMMIT", "SEAL", "SEAL_BATCH"):   # a sealing frame is out, its answer not read yet
            self._crash_point("after_commit_sent")
        if name == "SEAL_BATCH":
            self._crash_point("after_batch_sent")

    def call(self, deadline, name, **fields):
        """One device call; a lost link drops the port so the next call reconnects."""
        client = self.device(deadline)
        try:
            return client.call(name, **fields)
        except DeviceUnavailable as exc:
            self._drop(exc.detail)
            raise

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
                "journal_fill": round(info["fill_ppm"] / 1e6, 6), "journal_warning": _warning(info["fill_ppm"]),
                "first_live": info["first_live"], "archived_seq": info["archived_seq"],
                "invoice_room": info["invoice_room"], "firmware": info["firmware"]}


def _warning(fill_ppm):
    """The fill warning level reached (80, 90, 95 percent), or None (issue 10: INFO and /status warn)."""
    for level in (95, 90, 80):
        if fill_ppm >= level * 10000:
            return level
    return None
