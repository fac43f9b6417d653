"""Sealing and exactly-once: PREPARE, SEAL and COMMIT (PROTOCOL.md 4.6, 4.7, 4.16).

Mixed into device.core.Core; STATUS and ABORT, which a seal does not need, are device/status.py's
and use the lookups here. Every invoice carries a 16-byte request id the host derives from the
POS Idempotency-Key; the device signs it into the invoice record, so a repeated request is
answered from the journal itself and never sealed twice, even when the host lost its own store
(DESIGN-NOTES invariant 9). Lookups never scan the journal: request ids through the 4-byte index
of device/journal.py, recent committed nonces through the RAM ring of device/nonces.py.

Before a nonce is issued or an invoice sealed, the record must fit in the journal next to the
records of the nonces already pending, outside the sectors reserved for the device's own
records (JOURNAL_FULL): a full device refuses early instead of handing out a nonce it cannot seal.
The installed country profile decides the groups, rates and use rules (device/profile.py installs
it; ``_the_profile`` reads it once per message on a board, once per install on an emulator) and
the window around the device clock the invoice timestamp must fall in. A credit is checked
against the evidence the host armed for its original (device/credits.py, imported only for
credits) at PREPARE and again when it is sealed, and its record carries the original and the new
credit root.
"""

import hashlib

from protocol import cbor, invoice, record, taxgroups, timefmt
from protocol.errors import IdentityError, InvoiceError, JournalError, MessageError, NonceError, ProfileError
from device.ring import stored_size

NONCE_LEN = 16
MIN_INVOICE = 160            # no invoice record is smaller (stored bytes): the early room check


def sized(value, name, length):
    if len(value) != length:
        raise MessageError("MESSAGE_FIELD", "%s must be %d bytes" % (name, length))
    return bytes(value)


class Sealing:
    def _the_profile(self):
        """The installed profile, decoded, when it is the journaled one; else PROFILE_MISSING.

        Read from the keystore, checked against the hash taken at power-up (or PROFILE) and
        decoded once, then kept in ``profile_memo`` with that hash: for the rest of the message on
        a board (Core.handle drops it after each message, for the heap), for as long as the hash
        holds on a core that keeps its modules (the emulator), where decoding it again for every
        SEAL cost about a third of a signature."""
        if self.profile_hash is None:
            raise ProfileError("PROFILE_MISSING", self.profile_detail or "no tax profile installed; send PROFILE")
        if self.journal.profile_hash != self.profile_hash:
            raise ProfileError("PROFILE_MISSING", "the stored profile is not the journaled one; send PROFILE again")
        memo = self.profile_memo
        if memo is not None and memo[0] == self.profile_hash:
            return memo[1]
        try:
            data = self.keystore.profile()
        except OSError as exc:
            raise IdentityError("KEYSTORE_FAILURE", "cannot read the profile: %s" % exc)
        if data is None or hashlib.sha256(data).digest() != self.profile_hash:
            raise ProfileError("PROFILE_MISSING", "the stored profile changed since power-up; send PROFILE again")
        profile = cbor.decode(data)
        self.profile_memo = (self.profile_hash, profile)
        return profile

    # -- what became of a request id or nonce -----------------------------------------------------
    def _sealed_seq(self, seq):
        """The sealed result of live invoice record ``seq``."""
        prev, _, payload = self.journal.chain(seq)
        fields, body, sig = record.decode(payload)
        return fields, record.sealed_result(fields, body, sig, prev)

    def _request(self, rid, digest=None):
        """(sealed result or None, pending (nonce, entry) or None) of request id ``rid``;
        REQUEST_ID_REUSED when it names an invoice other than ``digest``."""
        seq = self.journal.find_request(rid)
        if seq is not None:
            fields, sealed = self._sealed_seq(seq)
            if digest is not None and fields[record.K_INVOICE_HASH] != digest:
                raise NonceError("REQUEST_ID_REUSED", "request id sealed another invoice as %s"
                                 % sealed[record.S_FISCAL_NUMBER])
            return sealed, None
        for nonce in sorted(self.nonces.pending):
            entry = self.nonces.pending[nonce]
            if entry["rid"] == rid:
                if digest is not None and entry["hash"] != digest:
                    raise NonceError("REQUEST_ID_REUSED", "request id is pending with another invoice")
                return None, (nonce, entry)
        return None, None

    def _committed(self, nonce):
        seq = self.nonces.committed_seq(nonce)
        return None if seq is None or seq < self.journal.first_live else self._sealed_seq(seq)[1]

    # -- uploads ---------------------------------------------------------------------------------
    def _chunk(self, name, total, rid, offset, data, upload):
        """Add one chunk of a ``name`` upload (PREPARE, SEAL, SEAL_BATCH) to ``upload`` (the one in
        progress; ignored at offset 0, which starts a new one). Returns the whole document once
        ``total`` bytes arrived, else None (the upload kept in ``self.upload``)."""
        if offset == 0:
            upload = [name, total, rid, bytearray()]
        elif upload is None or upload[:3] != [name, total, rid] or offset != len(upload[3]):
            raise InvoiceError("CHUNK_SEQUENCE", "chunk at %d does not continue the %s upload" % (offset, name))
        if offset + len(data) > total:
            raise InvoiceError("CHUNK_SEQUENCE", "chunk ends past the announced total %d" % total)
        upload[3].extend(data)
        self.upload = upload
        if len(upload[3]) < total:
            return None
        self.upload = None
        return bytes(upload[3])

    def _upload(self, name, fields):
        """Take one chunk. Returns (request id, None) while incomplete, else (request id, digest,
        summary, earlier seal, pending) of the whole invoice."""
        rid = sized(fields["request_id"], "request_id", record.REQUEST_ID_LEN)
        total, offset, data = fields["total"], fields["offset"], fields["data"]
        if total > invoice.MAX_INVOICE:
            raise InvoiceError("INVOICE_TOO_LARGE", "invoice of %d bytes; limit %d" % (total, invoice.MAX_INVOICE))
        if total < 1:
            raise InvoiceError("INVOICE_MALFORMED", "total must be at least 1 byte")
        if offset == 0 and self._request(rid) == (None, None):
            self._now()   # refuse before the host uploads up to 16 KiB for nothing
            if name == "PREPARE":
                self.nonces.check_room()
            self._check_room(MIN_INVOICE)
        canonical = self._chunk(name, total, rid, offset, data, self.upload)
        if canonical is None:
            return None
        profile = self._the_profile()
        summary = invoice.decode(canonical, profile)[1]
        summary["window"] = profile["window"]
        del profile
        digest = hashlib.sha256(canonical).digest()
        return (total, rid, digest, summary) + self._request(rid, digest)

    # -- the record ------------------------------------------------------------------------------
    def _invoice_fields(self, rid, digest, summary, credit=None):
        fields = {record.K_REQUEST_ID: rid, record.K_INVOICE_HASH: digest,
                  record.K_INVOICE_TYPE: summary["type"], record.K_GROUPS: summary["lines"],
                  record.K_TOTAL: summary["total"], record.K_CURRENCY: summary["currency"]}
        if credit is not None:
            fields[record.K_ORIGINAL], fields[record.K_CREDIT_ROOT] = credit[0], credit[1]
        return fields

    def _credit(self, summary):
        """(original counter, new credit root, armed entry, credited after) of a credit invoice
        checked against its armed evidence, or None for any other invoice."""
        if summary["credit"] is None:
            return None
        from device import credits
        return credits.check(self, summary)

    def _check_room(self, size, skip=None):
        sizes = [self.nonces.pending[n]["size"] for n in sorted(self.nonces.pending) if n != skip]
        if not self.journal.fits(sizes + [size], 2):
            raise JournalError("JOURNAL_FULL", "no room for the invoice beside %d pending; archive the "
                               "journal (ARCHIVED)" % len(sizes))

    def _admit(self, rid, digest, summary, skip=None):
        """Clock, the profile's time window, the credit rules, journal room (the record's size
        bound, whatever seq and time it gets) and rates: the verifier takes only a rate in force by
        the record's time, the device clock, so a POS clock ahead of a rate change is refused.
        Returns (now, stored size, credit)."""
        now = self._now()
        before, after = summary["window"]
        stamp = timefmt.parse_time(summary["timestamp"])
        if stamp < now - before or stamp > now + after:
            raise InvoiceError("INVOICE_TIME_WINDOW", "timestamp %s is outside -%d s .. +%d s of the device clock %s"
                               % (summary["timestamp"], before, after, timefmt.format_time(now)))
        credit = self._credit(summary)
        # keys 1-4 and 6 add at most 23 bytes and the device id to the body (seq, counter and time
        # in at most 5 bytes each, a 2-byte text head); the map head stays one byte
        size = stored_size(len(record.encode_body(self._invoice_fields(rid, digest, summary, credit))) + 23
                           + len(self.device_id.encode()) + record.SIG_LEN)
        self._check_room(size, skip)
        at = timefmt.format_time(now)
        groups = self._the_profile()["groups"]
        for code, rate, _, _ in summary["lines"]:
            if rate not in taxgroups.rates_until(code, at, groups):
                raise InvoiceError("TAX_RATE_MISMATCH", "rate of %s is not in force at %s" % (code, at))
        return now, size, credit

    def _seal(self, rid, digest, summary, now, credit, nonce=None):
        """Journal the invoice record; a nonce it consumes joins the committed ring; a credit moves
        its armed evidence on (only once the record is on flash)."""
        sealed = self._append(record.INVOICE, self._invoice_fields(rid, digest, summary, credit), now)
        if nonce is not None:
            self.nonces.mark_committed(nonce, sealed[0][record.K_SEQ])
        if credit is not None:
            from device import credits
            credits.sealed(self, credit)
        return record.sealed_result(*sealed)

    # -- messages --------------------------------------------------------------------------------
    def _on_prepare(self, fields):
        got = self._upload("PREPARE", fields)
        if got is None:
            return {"received": len(self.upload[3])}
        total, rid, digest, summary, sealed, pending = got
        if sealed is not None:
            return {"received": total, "sealed": sealed, "replayed": True}
        if pending is None:
            self.nonces.check_room()
            now, size, _ = self._admit(rid, digest, summary)
            nonce = self.entropy.random(NONCE_LEN)
            while self.nonces.known(nonce):
                nonce = self.entropy.random(NONCE_LEN)
            self.nonces.add(nonce, {"hash": digest, "summary": summary, "expires": now + self.nonces.ttl,
                                    "rid": rid, "size": size})
            pending = nonce, self.nonces.pending[nonce]
        return {"received": total, "nonce": pending[0], "expires": pending[1]["expires"], "invoice_hash": digest,
                "subtotal": summary["subtotal"], "total_vat": summary["total_vat"],
                "total": summary["total"], "currency": summary["currency"]}

    def _on_seal(self, fields):
        got = self._upload("SEAL", fields)
        if got is None:
            return {"received": len(self.upload[3])}
        total, rid, digest, summary, sealed, pending = got
        if sealed is not None:
            return {"received": total, "sealed": sealed, "replayed": True}
        nonce = None if pending is None else pending[0]   # a PREPAREd request id: consume its nonce
        now, _, credit = self._admit(rid, digest, summary, nonce)
        return {"received": total, "sealed": self._seal(rid, digest, summary, now, credit, nonce), "replayed": False}

    def _on_commit(self, fields):
        nonce = sized(fields["nonce"], "nonce", NONCE_LEN)
        sealed = self._committed(nonce)
        if sealed is not None:
            return {"sealed": sealed, "replayed": True}
        entry = self.nonces.pending.get(nonce)
        if entry is None:
            self.nonces.refuse_ended(nonce)
            raise NonceError("NONCE_UNKNOWN", "nonce is not pending nor recently committed; ask STATUS by request id")
        now = self._now()
        credit = self._credit(entry["summary"])   # evidence and balance again: another credit may have come first
        return {"sealed": self._seal(entry["rid"], entry["hash"], entry["summary"], now, credit, nonce),
                "replayed": False}
