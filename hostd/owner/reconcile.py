"""Reconciliation: the daemon's store made to agree with the device journal (mixed into Owner).

At every connect (hostd/owner/owner.py) the journal records the store has not seen are mirrored,
each with its record hash, and every sealed invoice among them is filed under the request that
asked for it, matched by the request id the device signed into the record (protocol 2). This is
what makes a ``kill -9`` of the daemon at any step lose nothing: the device's journal is the
truth, the store catches up with it. It also refuses a device that went backwards (fewer records
than the store has seen, or another record under a known fiscal counter).

Protocol 2 signs the previous record's hash instead of storing it (PROTOCOL.md 7.2), so the
mirror keeps each record's hash as it arrives: the first new record chains to the last mirrored
one, to GENESIS, or, for a store rebuilt after the device erased archived records, to the hash a
checkpoint's ``archived`` field names.

Filing is idempotent and per record (issue 8): a record that cannot be filed (its bytes do not
decode, or the request it belongs to holds data no parser accepts) is quarantined, reported in
``/status`` and the log, and skipped; the request that asked for it still gets its sealed answer,
so the POS always learns its fiscal number. One bad record never stops sealing or exports.
Transient failures (the store cannot write, the device is gone) are not quarantined: they
propagate, the filing mark stays, and the next reconcile files the record. A journal invoice no
request row asks for (the store was lost or is older than the journal) is filed without its
full body, and the log names it: its retry, with the same Idempotency-Key, is answered by the
device from the same record (it dedupes request ids) and completes the row.
"""

import hashlib
import logging
import time

from protocol import record
from protocol.errors import FiscalError
from hostd.books import envelope, events
from hostd.intake import fastcbor
from hostd.books.views import summary_columns
from hostd.errors import DeviceRefused, DeviceUnavailable
from hostd.store.store import COLUMNS

log = logging.getLogger("fiscal.owner")

# What makes a record unfileable: its own bytes or its request's data, never I/O.
UNFILEABLE = (FiscalError, ValueError, KeyError, TypeError, IndexError)


class Reconciler:
    """Expects ``self.store``, ``self.info`` (INFO), ``self.client``, ``self._drop`` and
    ``self.on_event`` (None, or called after an event was stored: it wakes the dispatcher)."""

    def reconcile(self, limit=None):
        """Make the store agree with the device journal: mirror new records (about ``limit`` at
        most, so a long catch-up can go in slices between other jobs), then file every sealed
        invoice under the request that asked for it (matched by request id). Returns True when
        the device holds records not mirrored yet.

        Filing resumes from the ``filed_seq`` mark, so a crash between mirroring and filing is
        repaired by the next reconcile. A device that has fewer records than the store has seen,
        or whose record under a known fiscal counter differs, was rolled back: refused.
        """
        info = self.info
        known = self.store.meta("device")
        if known is not None and known["device_id"] != info["device_id"]:
            raise DeviceUnavailable("device %s is not the device %s this store belongs to"
                                    % (info["device_id"], known["device_id"]))
        have = self.store.journal_seq()
        seen = max(have, self.store.max_sealed_seq())
        if info["seq"] < seen:
            raise DeviceUnavailable("device journal has %d records, the store has seen %d: rollback refused"
                                    % (info["seq"], seen))
        self.store.set_meta("device", {"device_id": info["device_id"], "public_key": info["public_key"].hex(),
                                       "certificate": info["certificate"].hex() if info.get("certificate") else None})
        if info["seq"] > have:
            try:
                try:
                    records = self.client.records(have + 1 if have else None, limit)
                except DeviceRefused as exc:   # the device erased records this store never mirrored
                    if exc.name != "RANGE_INVALID":
                        raise DeviceUnavailable("device refused READ_JOURNAL: %s" % exc.detail)
                    log.error("records %d.. were archived and erased before this store mirrored them: the store "
                              "mirrors from the device's first live record on (%s)", have + 1, exc.detail)
                    records = self.client.records(None, limit)
            except DeviceUnavailable as exc:
                self._drop(exc.detail)
                raise
            if records:
                first = record.decode(records[0])[0][record.K_SEQ]
                hashes = self._hashes(first, records)
                self.store.add_journal(first, records, hashes)
                self.store.set_meta("head", {"seq": first + len(records) - 1, "hash": hashes[-1].hex()})
        filed = self.store.meta("filed_seq", 0)
        rows = self.store.journal_from(filed + 1)
        prev = self.store.journal_hash(rows[0]["seq"] - 1) if rows else None
        for seq, payload, digest in rows:
            self._file_record(seq, payload, prev)
            self.store.set_meta("filed_seq", seq)
            prev = digest
        return self.store.journal_seq() < info["seq"]

    def _hashes(self, first, records):
        """Each record's hash, chained from the record before ``first`` (module docstring)."""
        prev = self._prev_of(first, records)
        out = []
        for payload in records:
            prev = record.record_hash(prev, payload)
            out.append(prev)
        return out

    def _prev_of(self, first, records):
        if first == 1:
            return record.genesis()
        known = self.store.journal_hash(first - 1)
        if known is not None:
            return known
        for payload in records:
            fields = record.decode(payload)[0]
            archived = fields.get(record.K_ARCHIVED)
            if fields[record.K_TYPE] == record.CHECKPOINT and archived and archived[0] == first - 1:
                return archived[1]
        raise DeviceUnavailable("cannot chain record %d: the store holds no record %d and no checkpoint names its "
                                "hash" % (first, first - 1))

    def _file_record(self, seq, payload, prev):
        row = sealed = None
        try:
            fields, body, sig = record.decode(payload)
            if fields[record.K_TYPE] != record.INVOICE:
                return
            if prev is None:
                raise ValueError("record %d has no known previous hash" % seq)
            sealed = record.sealed_result(fields, body, sig, prev)
            row = self.store.request_by_request_id(fields[record.K_REQUEST_ID])
            if row is None:
                log.warning("journal invoice %s (record %d) has no request in the store: filed without its full "
                            "body; a retry with its Idempotency-Key completes it", sealed[record.S_FISCAL_NUMBER], seq)
            self._file(row, sealed, fields)
        except UNFILEABLE as exc:
            self._quarantine(seq, row, sealed, exc)

    def _file(self, row, sealed, fields, mirror=False):
        """File one sealed invoice; ``mirror``: also mirror its record in the same transaction
        when it directly follows the mirror (a live seal; reconcile mirrors by itself)."""
        doc, body, filing_events = self._filing(row, sealed, fields)
        own = (fields[record.K_SEQ], sealed[record.S_RECORD] + sealed[record.S_SIGNATURE],
               sealed[record.S_LEDGER_HASH], sealed[record.S_PREVIOUS_HASH]) if mirror else None
        self.store.record_sealed(doc, row["key"] if row else None, body, events=filing_events, mirror=own)
        if self.on_event is not None:
            self.on_event()
        return body

    def _filing(self, row, sealed, fields):
        """(invoice row, answer bytes, events) that file one sealed invoice; refuses a counter
        already filed with another record (a rolled-back or replaced device)."""
        body = envelope.sealed_body(sealed)
        doc = {"counter": fields[record.K_COUNTER], "fiscal_number": sealed[record.S_FISCAL_NUMBER],
               "seq": fields[record.K_SEQ], "invoice_hash": fields[record.K_INVOICE_HASH],
               "canonical": row["canonical"] if row else None, "invoice_json": row["invoice_json"] if row else None,
               "sealed_json": body.decode(), "merchant_nif": None, "outlet_id": None, "client_nif": None,
               "invoice_type": fields[record.K_INVOICE_TYPE], "timestamp": None,
               "sealed_at": sealed[record.S_TIMESTAMP], "total": fields[record.K_TOTAL],
               "currency": fields[record.K_CURRENCY], "reference": None}
        if row is not None:
            doc.update(_columns(row))
        if record.K_ORIGINAL in fields:   # a credit note: its credits entry is filed with it
            doc["credit"] = (fields[record.K_ORIGINAL], [[g[0], g[2], g[3]] for g in fields[record.K_GROUPS]])
        filed = self.store.sealed_ledger(doc["counter"])
        if filed is not None and filed != sealed[record.S_LEDGER_HASH].hex():
            raise DeviceUnavailable("fiscal counter %d is already filed with another record: the device "
                                    "journal was rolled back or replaced; refusing it" % doc["counter"])
        return doc, body, [(events.INVOICE_SEALED, events.invoice_sealed(sealed, doc))]

    def _quarantine(self, seq, row, sealed, exc):
        """Hold record ``seq`` aside, tell the log, and still answer its request if it has one."""
        reason = "%s: %s" % (type(exc).__name__, getattr(exc, "detail", exc))
        body = envelope.sealed_body(sealed) if sealed is not None else None
        number = sealed[record.S_FISCAL_NUMBER] if sealed is not None else None
        self.store.quarantine(seq, number, reason, body.decode() if body else None, time.time())
        if row is not None and body is not None and row["state"] != "done":
            self.store.set_failed(row["key"], 200, body)
        log.error("journal record %d (%s) quarantined, not filed: %s", seq, number or "undecodable", reason)

    def reconcile_one(self, row, sealed):
        """File the invoice a live seal just made; return its answer (bytes), straight from the
        owner rather than read back from the store."""
        fields = fastcbor.decode_record(sealed[record.S_RECORD] + sealed[record.S_SIGNATURE])[0]
        if fields.get(record.K_INVOICE_HASH) != hashlib.sha256(row["canonical"]).digest():
            raise DeviceUnavailable("device sealed a different invoice under this request")
        try:
            return self._file(row, sealed, fields, mirror=True)
        except UNFILEABLE as exc:
            self._quarantine(fields[record.K_SEQ], row, sealed, exc)
            return envelope.sealed_body(sealed)


def _columns(row):
    """The searchable columns of a request row: taken at acceptance since step 2 of the store;
    a row from an older daemon has none, and its JSON is parsed now (it may be unfileable)."""
    if row["timestamp"] is not None:
        return {name: row[name] for name in COLUMNS if name != "terminal"}
    return summary_columns(row["invoice_json"])
