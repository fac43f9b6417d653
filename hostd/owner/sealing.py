"""Sealing on the owner thread (mixed into Owner): the exactly-once state machine on request rows.

Sealing is a small state machine on the ``requests`` row, advanced one durable step at a time.
Every device call carries the row's request id (protocol 2: ``request_id_for(key)``, stored on
the row when the request was accepted), which the device signs into the invoice record and
dedupes: a repeated id gets the seal it already made.

- **One call** (``1p:`` keys): SEAL first, then the request, its answer and the invoice in one
  transaction (``seal_new``, issue 15): one frame, one round trip, one durable commit. When that
  does not go cleanly the row is stored and advanced ``new`` -SEAL-> ``done(response)``; after a
  timeout or a lost link the same SEAL, or STATUS by request id, answers.
- **Two phase** (``2p:`` keys, the POS holds the nonce): ``new`` -PREPARE-> ``prepared(nonce)``
  -COMMIT-> ``done``; a prepared request whose COMMIT's fate is unknown is first asked about with
  STATUS by request id, never committed blindly.

Only two outcomes leave ``seal`` for a request the device may have sealed: the stored answer, or
DEVICE_UNAVAILABLE (nothing stored, the POS retries with the same key).
"""

import json
import sqlite3
import time

from protocol import invoice, messages, record
from protocol.error_table import ERRORS
from hostd.books import envelope
from hostd.owner.credits import CreditOrder
from hostd.errors import (DeviceBusy, DeviceRefused, DeviceUnavailable, JournalFull, KeyReused,
                          StoreUnavailable)

NONCE_CODES = {messages.UNKNOWN: "NONCE_UNKNOWN", messages.EXPIRED: "NONCE_EXPIRED", messages.ABORTED: "NONCE_ABORTED"}
# Device refusals that are the final answer for an invoice (its content, or a device that will
# not seal again); every other refusal is transient and is never stored as the answer to a key.
FINAL_REFUSALS = tuple(name for code, (name, family, _) in ERRORS.items()
                       if family == "invoice" and name != "CHUNK_SEQUENCE") + ("JOURNAL_CORRUPT", "REQUEST_ID_REUSED")
TWO_PHASE = "2p:"   # request keys of the two-phase API: the POS holds the nonce


class Sealing:
    """Expects Owner's ``store``, ``slots``, ``device``, ``call``, ``_drop``, ``_crash_point``,
    ``reconcile_one`` and the counters ``sealed_since_check`` and ``journal_full``."""

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
                elif not key.startswith(TWO_PHASE):
                    self._seal_once(row, deadline)
                else:
                    fresh = self._prepare(row, deadline)
            except JournalFull:
                # Reclaim, then the same request again; with archiving off (or nothing left to
                # archive) the operator must free the journal: the POS gets the retryable 503.
                if self.archive is None or self.archive_now(deadline) is None:
                    raise
            except DeviceUnavailable:
                fresh = None   # after a timeout or a lost link: ask STATUS, never COMMIT blindly
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def seal_new(self, pending, budget):
        """The one-call path of an accepted request (hostd/api/accept.py): its row stored without a
        sync, one SEAL, then the one durable transaction that files the seal, the answer, the
        mirror and the filing mark (issue 15; hostd/store/store.py ``add_pending`` says why one
        sync is enough); (http status, response bytes). Anything but a clean seal (the device
        away, busy, full or refusing) goes on in ``seal``, the state machine on the stored row.
        A credit type is never sealed here: it takes its own branch, EVIDENCE then SEAL, one at a
        time (hostd/owner/credits.py)."""
        if pending.get("original") is not None:
            return self.seal_credit(CreditOrder.of_pending(pending), budget)
        if not self.store.add_pending(pending, durable=False):
            if self.store.request(pending["key"])["body_hash"] != pending["body_hash"]:
                raise KeyReused()
            return self.seal(pending["key"], budget)
        deadline = time.monotonic() + budget
        try:
            sealed = self.device(deadline).seal(pending["request_id"], pending["canonical"])
        except (DeviceRefused, DeviceUnavailable) as exc:
            if isinstance(exc, DeviceUnavailable):
                self._drop(exc.detail)
                if time.monotonic() >= deadline:
                    raise   # the row is stored: the retry finds it; the POS hears why
            return self.seal(pending["key"], max(0.0, deadline - time.monotonic()))
        self.sealed_since_check += 1
        self._crash_point("after_commit_answered")
        return 200, self.reconcile_one(pending, sealed)

    def admit(self, pending):
        """Store a request row before its first device step (the two-phase path); a retry must
        carry the same body."""
        if not self.store.add_pending(pending) and self.store.request(pending["key"])["body_hash"] != pending["body_hash"]:
            raise KeyReused()

    def _refused(self, row, exc):
        """Store a refusal only when it is final for this invoice; otherwise raise a retryable error.
        A full journal is not final: archiving frees it (the owner archives at once)."""
        if exc.name in FINAL_REFUSALS:
            self.store.set_failed(row["key"], 422, envelope.error_body(
                "FISCALIZATION_FAILED", exc.device_detail, device_code=exc.name))
        elif exc.name == "TOO_MANY_PENDING":
            raise DeviceBusy("the device has its maximum of open PREPAREs; retry shortly")
        elif exc.name == "JOURNAL_FULL":
            self.journal_full = True
            raise JournalFull("the device journal is full (%s); the daemon archives and reclaims it: retry "
                              "shortly with the same Idempotency-Key" % exc.device_detail)
        else:
            raise DeviceUnavailable("device refused %s: %s" % (exc.name, exc.device_detail))

    def _request_id(self, row):
        """The row's device request id, stored before any device call carries it."""
        if row["request_id"] is None:
            self.store.set_request_id(row["key"], record.request_id_for(row["key"]))
        return record.request_id_for(row["key"])

    def _seal_once(self, row, deadline):
        """The one-call path (protocol 2 SEAL): one round trip; the device dedupes the request id,
        so after a lost answer the same SEAL (or STATUS by request id) gets the same seal."""
        rid = self._request_id(row)
        client = self.device(deadline)
        try:
            sealed = client.seal(rid, row["canonical"])
        except DeviceRefused as exc:
            self._refused(row, exc)
            return
        except DeviceUnavailable as exc:
            self._drop(exc.detail)
            raise
        self.sealed_since_check += 1
        self._crash_point("after_commit_answered")
        self.reconcile_one(row, sealed)

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
            self.sealed_since_check += 1   # it may be a record the archiving check has not counted
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
        self.sealed_since_check += 1
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
    def prepare(self, pending, budget):
        """Two-phase PREPARE: store the request (a ``pending`` dict, or the key of a stored one),
        advance its row to ``prepared`` and return what the POS shows."""
        deadline = time.monotonic() + budget
        if isinstance(pending, str):   # a stored request's key
            key = pending
        else:
            self.admit(pending)
            key = pending["key"]
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


def invoice_summary(canonical):
    summary = invoice.decode(canonical)[1]
    return {"subtotal": summary["subtotal"], "total_vat": summary["total_vat"], "total": summary["total"],
            "currency": summary["currency"], "tax_groups": summary["groups"]}
