"""Reconciliation: the daemon's store made to agree with the device journal (mixed into Owner).

At every connect (hostd/owner/owner.py) the journal records the store has not seen are mirrored, and
every sealed invoice among them is filed under the request that asked for it, matched by the
request id the device signed into the record (protocol 2).
This is what makes a ``kill -9`` of the daemon at any step lose nothing: the device's journal is
the truth, the store catches up with it. It also refuses a device that went backwards (fewer
records than the store has seen, or another record under a known fiscal counter).
"""

import hashlib

from protocol import record
from hostd.books import envelope
from hostd.errors import DeviceUnavailable
from hostd.books.views import summary_columns


class Reconciler:
    """Expects ``self.store``, ``self.info`` (INFO), ``self.client`` and ``self._drop``."""

    def reconcile(self):
        """Make the store agree with the device journal: mirror new records, then file every
        sealed invoice under the request that asked for it (matched by request id).

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
        self.store.set_meta("device", {"device_id": info["device_id"], "public_key": info["public_key"].hex()})
        if info["seq"] > have:
            try:
                records = self.client.records(have + 1)
            except DeviceUnavailable:
                self._drop()
                raise
            self.store.add_journal(have + 1, records)
        filed = self.store.meta("filed_seq", 0)
        prev = None   # the previous record's hash: signed, not stored (protocol 2), so walked here
        for seq, payload in self.store.journal_from(1):
            if prev is None:
                prev = record.genesis() if seq == 1 else record.decode(payload)[0].get(record.K_PREV)
                if prev is None:
                    raise DeviceUnavailable("the journal mirror starts at record %d, not at 1 or a checkpoint" % seq)
            if seq > filed:
                fields, body, sig = record.decode(payload)
                if fields[record.K_TYPE] == record.INVOICE:
                    row = self.store.request_by_request_id(fields[record.K_REQUEST_ID])
                    self._file(row, record.sealed_result(fields, body, sig, prev), fields)
                self.store.set_meta("filed_seq", seq)
            prev = record.record_hash(prev, payload)

    def _file(self, row, sealed, fields):
        body = envelope.sealed_body(sealed)
        doc = {"counter": fields[record.K_COUNTER], "fiscal_number": sealed[record.S_FISCAL_NUMBER],
               "seq": fields[record.K_SEQ], "invoice_hash": fields[record.K_INVOICE_HASH],
               "canonical": row["canonical"] if row else None, "invoice_json": row["invoice_json"] if row else None,
               "sealed_json": body.decode(), "merchant_nif": None, "outlet_id": None, "client_nif": None,
               "invoice_type": fields[record.K_INVOICE_TYPE], "timestamp": None,
               "sealed_at": sealed[record.S_TIMESTAMP], "total": fields[record.K_TOTAL],
               "currency": fields[record.K_CURRENCY]}
        if row is not None:
            doc.update(summary_columns(row["invoice_json"]))
        filed = self.store.sealed_ledger(doc["counter"])
        if filed is not None and filed != sealed[record.S_LEDGER_HASH].hex():
            raise DeviceUnavailable("fiscal counter %d is already filed with another record: the device "
                                    "journal was rolled back or replaced; refusing it" % doc["counter"])
        self.store.record_sealed(doc, row["key"] if row else None, body)
        return body

    def reconcile_one(self, row, sealed):
        fields = record.decode(sealed[record.S_RECORD] + sealed[record.S_SIGNATURE])[0]
        if fields.get(record.K_INVOICE_HASH) != hashlib.sha256(row["canonical"]).digest():
            raise DeviceUnavailable("device sealed a different invoice under this nonce")
        self._file(row, sealed, fields)
