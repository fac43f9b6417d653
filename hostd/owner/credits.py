"""Credit notes on the owner thread (mixed into Owner): EVIDENCE, then SEAL, one credit at a time.

The device keeps one 32-byte root of what has been credited against every original
(protocol/smt.py, device/credits.py); the host keeps the leaves (``CreditBooks``, from the store's
credits table, hostd/store/credits.py) and before each credit proves the original's leaf with
EVIDENCE, which the device arms in RAM for the next SEAL. Credit types are never batched or
PREPAREd: each is its own branch here, EVIDENCE then SEAL.

A credit request (a void, a refund, or a credit type sent to POST /api/v1/invoices) goes:

1. **Its key's row**, if stored: the same body continues it (a done row answers its stored bytes,
   byte for byte), another body is IDEMPOTENCY_KEY_REUSED.
2. **STATUS by request id** when there is no row: a credit the device sealed under this key (the
   row lost with the store, or never durable) answers that seal; it is never re-EVIDENCEd into a
   refusal because the balance it consumed is gone.
3. **EVIDENCE** of the original (its signed record and prev from the filed invoice, the credited
   list and proof from the books). The answer's ``remaining`` is what the device proved; a void or
   refund is built from it (hostd/books/credit_notes.py) and checked here with the device's own
   rules, so each refusal has its own typed error and nothing is stored or sealed. Stale evidence
   (the books lack a credit the device counted) makes the books rebuild from the records (mirror
   and archive) once; still stale is CREDIT_BOOKS_INCOMPLETE.
4. **The row**, then **SEAL**. The armed evidence lives in device RAM only: after a lost link,
   a timeout or a device power cut the next attempt asks STATUS by request id first and, when the
   credit is not sealed, sends EVIDENCE again before the same SEAL (same request id, same bytes:
   the device dedupes). After a daemon crash the row is either filed from the journal at the next
   connect (sealed) or still ``new`` (not sealed), and a retry goes on from step 3.
"""

import hashlib
import json
import logging
import time

from device.credits import KINDS
from protocol import invoice, messages, record, smt, taxgroups
from hostd.books import envelope
from hostd.books.credit_notes import add_credited
from hostd.intake.amounts import money_text
from hostd.errors import (CREDIT_REFUSALS, CreditBooksIncomplete, CreditCurrencyMismatch, CreditExceedsBalance,
                          CreditKindMismatch, CreditRefused, DeviceRefused, DeviceUnavailable, JournalFull, KeyReused,
                          OriginalIsCredit, OriginalNotFound, OriginalSettled)

log = logging.getLogger("fiscal.owner")
EVIDENCE_LOST = ("CREDIT_EVIDENCE_MISSING", "CREDIT_EVIDENCE_STALE")   # at SEAL: arm again, then SEAL again
POST_FIELDS = {"original": "credit.original_fiscal_number", "currency": "totals.currency", "kind": "invoice_type",
               "amounts": "items"}


class CreditOrder:
    """One credit request as the API hands it over: its store ``key`` and ``body_hash``, the
    ``original`` fiscal number, the ``fields`` its refusals name, and ``build(original_row,
    remaining)`` making the ``pending`` request (hostd/api/accept.py) once EVIDENCE proved what
    remains. ``exact`` is True when the original must be named by its exact fiscal number;
    ``authorise(outlet_id)`` raises when the request may not credit that outlet's invoices."""

    def __init__(self, key, body_hash, original, build, fields, exact=False, authorise=None):
        self.authorise = authorise   # (outlet_id) -> None, or the API's 403
        self.key = key
        self.body_hash = body_hash
        self.request_id = record.request_id_for(key)
        self.original = original
        self.build = build
        self.fields = fields
        self.exact = exact

    @classmethod
    def of_pending(cls, pending):
        """A credit type sent to POST /api/v1/invoices: the POS's own bytes, built already."""
        return cls(pending["key"], pending["body_hash"], pending["original"], lambda row, left: pending, POST_FIELDS,
                   exact=True, authorise=pending.get("authorise"))


class CreditBooks:
    """The host's copy of the device's credit tree: one leaf per credited original (the sum of
    its credits per group), loaded from the credits table as rows are added. The table is filed
    with each credit invoice (so it is as complete as the store), and the tree is loaded at the
    owner's first credit rather than at start, so a daemon that seals only sales never pays for
    it; the device's answer to EVIDENCE is what proves the books right (stale: ``rebuild``)."""

    def __init__(self, store, archive):
        self.store = store
        self.archive = archive
        self.tree = smt.Tree()
        self.loaded = 0   # rowid of the last credits row in the tree

    def refresh(self):
        for rowid, original, groups in self.store.credits_since(self.loaded):
            self.tree.set(original, add_credited(self.tree.credited(original), groups))
            self.loaded = rowid

    def evidence(self, counter):
        """(credited so far, proof) of the original with fiscal ``counter``."""
        self.refresh()
        return self.tree.credited(counter), self.tree.proof(counter)

    def root(self):
        self.refresh()
        return self.tree.root()

    def rebuild(self):
        """Refill the credits table from the credit records themselves: the archive's segments
        before the mirror's first record (a rebuilt store), then the mirror."""
        rows = self.store.journal_from(1)
        first = rows[0]["seq"] if rows else 1
        older = self.archive.records_before(first) if self.archive is not None and first > 1 else []
        entries = []
        for seq, rec in older + [(r["seq"], r["record"]) for r in rows]:
            if record.type_of(rec) != record.INVOICE:
                continue
            fields = record.decode(rec)[0]
            if record.K_ORIGINAL in fields:
                entries.append((fields[record.K_COUNTER], fields[record.K_ORIGINAL], seq,
                                [[g[0], g[2], g[3]] for g in fields[record.K_GROUPS]]))
        self.store.replace_credits(entries)
        self.tree, self.loaded = smt.Tree(), 0
        self.refresh()
        log.warning("credit books rebuilt from %d credit records (%d archived, %d mirrored records read)",
                    len(entries), len(older), len(rows))


class Crediting:
    """Expects Owner's ``store``, ``books`` (CreditBooks), ``info``, ``device``, ``call``, ``_drop``,
    ``reconcile``, ``reconcile_one``, ``_refused``, ``archive``, ``archive_now``,
    ``_crash_point`` and ``sealed_since_check``."""

    def seal_credit(self, order, budget):
        """Advance the credit ``order`` to its sealed answer (module docstring); (http status,
        response bytes). A refusal raises its CreditRefused before anything is stored."""
        deadline = time.monotonic() + budget
        armed = False
        while True:
            row = self.store.request(order.key)
            if row is not None and row["body_hash"] != order.body_hash:
                raise KeyReused()
            if row is not None and row["state"] == "done":
                return row["status"], row["response"]
            if time.monotonic() >= deadline:
                raise DeviceUnavailable("the credit note could not be sealed within %.0f s; retry with the same "
                                        "Idempotency-Key" % budget)
            try:
                if row is None:
                    answer = self._first(order, deadline)
                    if answer is not None:
                        return 200, answer
                    armed = True
                else:
                    self._step(row, order, deadline, armed)
                    armed = False
            except JournalFull:
                armed = False
                if self.archive is None or self.archive_now(deadline) is None:
                    raise
            except DeviceUnavailable as exc:
                armed = False
                self._drop(exc.detail)
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def _first(self, order, deadline):
        """A credit request with no row yet: the seal the device already made for its request id
        (bytes), or None once it was armed, checked and its row stored (steps 2-3)."""
        sealed = self._sealed_for(order.request_id, deadline)
        if sealed is not None:
            return self._replayed(order, sealed)
        original = self._original(order)
        left = self._arm(original, order.fields["original"], deadline)
        pending = order.build(original, left)
        check(invoice.decode(pending["canonical"])[1], original, left, order.fields)
        self.store.add_pending(pending, durable=False)
        self._crash_point("after_credit_armed")   # tests/test_credit_daemon.py: EVIDENCE armed, no SEAL yet
        return None

    def _step(self, row, order, deadline, armed):
        """One SEAL of a stored credit row, arming it first unless that was just done."""
        if not armed and not self._rearm(row, order, deadline):
            return
        try:
            sealed = self.device(deadline).seal(row["request_id"], row["canonical"])
        except DeviceRefused as exc:
            if exc.name in EVIDENCE_LOST:
                return   # the device lost or outgrew the evidence: arm again, then the same SEAL
            if exc.name in CREDIT_REFUSALS:
                self._refuse_row(row, CREDIT_REFUSALS[exc.name](exc.device_detail, order.fields["amounts"]))
            else:
                self._refused(row, exc)
            return
        self.sealed_since_check += 1
        self._crash_point("after_commit_answered")
        self._filed(row, sealed)

    def _rearm(self, row, order, deadline):
        """A stored credit not known sealed: STATUS first, then EVIDENCE and the checks again
        (another credit may have come first). False when the row got its answer."""
        sealed = self._sealed_for(row["request_id"], deadline)
        if sealed is not None:
            self.sealed_since_check += 1   # it may be a record the archiving check has not counted
            self._filed(row, sealed)
            return False
        original = self._original(order)
        left = self._arm(original, order.fields["original"], deadline)
        try:
            check(invoice.decode(row["canonical"])[1], original, left, order.fields)
        except CreditRefused as exc:
            self._refuse_row(row, exc)
            return False
        return True

    def _refuse_row(self, row, exc):
        """A stored credit request the device's rules now refuse: that is its final answer."""
        status, body, _ = envelope.error_of(exc)
        self.store.set_failed(row["key"], status, body)

    def _filed(self, row, sealed):
        """File a credit the device sealed (its credits entry comes with it) and check that the
        books now give the root the device signed into the record."""
        body = self.reconcile_one(row, sealed)
        fields = record.decode(sealed[record.S_RECORD] + sealed[record.S_SIGNATURE])[0]
        if fields.get(record.K_CREDIT_ROOT) != self.books.root():
            log.error("credit %s: the books' root differs from the one the device signed; the next credit's "
                      "EVIDENCE is refused as stale and rebuilds them", sealed[record.S_FISCAL_NUMBER])
        return body

    def _sealed_for(self, request_id, deadline):
        answer = self.call(deadline, "STATUS", request_id=request_id)
        return answer["sealed"] if answer["state"] == messages.COMMITTED else None

    def _replayed(self, order, sealed):
        """The answer to a credit request the device sealed while the store kept no row for it
        (the store was lost, or the row never became durable). A POS credit note (its own bytes)
        is stored and filed with its content; a void or refund built by the daemon cannot be
        rebuilt byte for byte (it was dated when it was sealed), so its seal is answered as is."""
        pending = order.build(None, None) if order.exact else None
        fields = record.decode(sealed[record.S_RECORD] + sealed[record.S_SIGNATURE])[0]
        if pending is not None and fields[record.K_INVOICE_HASH] == hashlib.sha256(pending["canonical"]).digest():
            self.store.add_pending(pending)
            return self._filed(pending, sealed)
        log.warning("credit %s answered from the device's journal: the store holds no request for its key",
                    sealed[record.S_FISCAL_NUMBER])
        return envelope.sealed_body(sealed)

    def _original(self, order):
        number, field = order.original, order.fields["original"]
        row = self.store.invoice(number)
        if row is None or (order.exact and row["fiscal_number"] != number):
            raise OriginalNotFound("no sealed invoice %s to credit" % number, field)
        if order.authorise is not None:
            order.authorise(row["outlet_id"])
        if row["invoice_type"] in invoice.CREDIT_TYPES:
            raise OriginalIsCredit("%s is itself a %s: a credit note cannot be credited" % (
                row["fiscal_number"], row["invoice_type"]), field)
        return row

    def _arm(self, original, field, deadline):
        """EVIDENCE for the original row; the device's ``remaining`` [[code, base, tax]]."""
        payload = json.loads(original["sealed_json"])["payload"]
        rec = bytes.fromhex(payload["signed_record"] + payload["signature"])
        prev = bytes.fromhex(payload["previous_hash"])
        for attempt in (1, 2):
            credited, proof = self.books.evidence(original["counter"])
            try:
                return self.call(deadline, "EVIDENCE", record=rec, prev=prev, credited=credited,
                                 proof=proof)["remaining"]
            except DeviceRefused as exc:
                if exc.name in CREDIT_REFUSALS:
                    raise CREDIT_REFUSALS[exc.name](exc.device_detail, field)
                if exc.name == "CREDIT_EVIDENCE_STALE" and attempt == 1:
                    self.info = self.call(deadline, "INFO")   # mirror every record first, then read them all
                    self.reconcile()
                    self.books.rebuild()
                    continue
                if exc.name in ("CREDIT_EVIDENCE_STALE", "CREDIT_EVIDENCE_INVALID"):
                    raise CreditBooksIncomplete(
                        "the device does not accept what this daemon knows of %s and its credits (%s): the store "
                        "lacks records the device erased, or was restored without its archive; nothing was sealed"
                        % (original["fiscal_number"], exc.device_detail), field)
                raise DeviceUnavailable("device refused EVIDENCE: %s" % exc.detail)


def check(summary, original, left, fields):
    """The device's credit rules (device/credits.py ``check``, same order) for a credit whose
    invoice summary is ``summary``, against the ``original`` row and what EVIDENCE proved
    remains of it (``left``); each rule its own typed refusal."""
    if summary["currency"] != original["currency"]:
        raise CreditCurrencyMismatch("the credit is in %s, the original %s in %s" % (
            summary["currency"], original["fiscal_number"], original["currency"]), fields["currency"])
    if original["invoice_type"] not in KINDS[summary["type"]]:
        raise CreditKindMismatch("a %s cannot credit a %s invoice (%s)" % (
            summary["type"], original["invoice_type"], original["fiscal_number"]), fields.get("kind", "invoice_type"))
    if not [g for g in left if g[1] or g[2]]:
        raise OriginalSettled("%s is fully credited already: nothing remains to void or refund"
                              % original["fiscal_number"], fields["original"])
    rest = dict((code, (base, tax)) for code, base, tax in left)
    digits = taxgroups.CURRENCIES.get(original["currency"], 2)
    for code, base, tax in summary["groups"]:
        have = rest.get(code)
        if have is None or base > have[0] or tax > have[1]:
            raise CreditExceedsBalance("group %s: crediting base %s + tax %s exceeds what remains of %s: %s" % (
                code, money_text(base, digits), money_text(tax, digits), original["fiscal_number"],
                "base %s + tax %s" % (money_text(have[0], digits), money_text(have[1], digits)) if have
                else "nothing, the original has no such group"), fields["amounts"])
