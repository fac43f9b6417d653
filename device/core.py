"""The fiscal core: a pure, synchronous state machine, ``Core.handle(request) -> response``.

It owns the fiscal counter, the time stamp and the signature (DESIGN-NOTES section 2). State it
keeps in RAM is either derived from the journal at power-up (counter, record sequence, chain
head, running totals) or is allowed to vanish with power (pending nonces, the upload buffer, the
clock). A COMMIT is one journal record: nonce consumed + counter advanced + invoice sealed.
Every refusal is a typed FiscalError answered on the wire, raised before any state changes.
"""

import hashlib

from protocol import invoice, messages, record, taxgroups, timefmt
from protocol.errors import ClockError, FiscalError, InvoiceError, JournalError, MessageError, NonceError
from protocol.frames import MAX_PAYLOAD
from device.identity import Identity
from device.journal import Journal
from device.nonces import Nonces
from device.ports import DeviceClock

FIRMWARE = "fiscal-core 0.1.0"
PROTOCOL_VERSION = 1
NONCE_LEN = 16
TIME_SLACK = 2          # clock adjustments up to this many seconds are not journalled
MAX_PING = 64


class Core(Identity):
    def __init__(self, flash, clock, entropy, keystore, max_pending=10, nonce_ttl=120,
                 manifest=taxgroups.MANIFEST, journal_start=0, journal_size=None, firmware=FIRMWARE,
                 table=None):
        """``table``: the signer's fixed-base table (device/table_file.py on a board)."""
        self.entropy = entropy
        self.clock = DeviceClock(clock)
        self.keystore = keystore
        self.table = table
        self.manifest = manifest
        self.firmware = firmware
        self.nonces = Nonces(max_pending, nonce_ttl)
        self.journal = Journal(flash, journal_start, journal_size)
        self.upload = None   # [total, bytearray] while a chunked PREPARE is in progress
        self._load_tail()
        self.fault = ""
        self.fault_detail = ""
        self._load_identity()
        if self.signer is not None and not self.fault:
            self._power_up()
            self._anchor()

    def _power_up(self):
        try:
            self._append(record.POWER_UP, {record.K_FIRMWARE: self.firmware}, self.last_time)
        except JournalError as exc:
            # A full or damaged journal: stay up read-only so INFO and READ_JOURNAL still work.
            self.fault = exc.name

    # -- state derived from the journal ------------------------------------------------------
    def _load_tail(self):
        self.seq, self.counter, self.last_time = 0, 0, 0
        self.last_hash = record.genesis()
        self.cumulative = []
        if self.journal.last is not None:
            fields, body, sig = record.decode(self.journal.last)
            self.seq, self.counter, self.last_time = fields[record.K_SEQ], fields[record.K_COUNTER], fields[record.K_TIME]
            self.last_hash = record.record_hash(body, sig)
        if self.journal.last_invoice is not None:
            self.cumulative = record.decode(self.journal.last_invoice)[0][record.K_CUMULATIVE]

    def _append(self, rtype, extra, t):
        """Sign and journal one record; the in-RAM state moves only if the record is on flash."""
        counter = self.counter + (1 if rtype == record.INVOICE else 0)
        fields = {record.K_TYPE: rtype, record.K_SEQ: self.seq + 1, record.K_COUNTER: counter,
                  record.K_TIME: t, record.K_PREV: self.last_hash, record.K_DEVICE: self.device_id}
        for key in extra:
            fields[key] = extra[key]
        body = record.encode_body(fields)
        sig = self.signer.sign(body)
        before = self.journal.count
        try:
            self.journal.append(body + sig)
        except JournalError:
            if self.journal.count == before:
                raise
        self.seq, self.counter, self.last_time = fields[record.K_SEQ], counter, t
        self.last_hash = record.record_hash(body, sig)
        if rtype == record.INVOICE:
            self.cumulative = fields[record.K_CUMULATIVE]
        return fields, body, sig

    # -- dispatch ----------------------------------------------------------------------------
    def handle(self, payload):
        """One request payload (canonical CBOR) -> one response payload. Never raises FiscalError."""
        mid = 0
        try:
            mid, mapping = messages.parse_request(payload)
            name = messages.MESSAGES[mid][0]
            fields = messages.request_fields(mid, mapping)
            self._require_key(name)
            self.nonces.expire(self.clock.now())
            return messages.encode_response(name, getattr(self, "_on_" + name.lower())(fields))
        except FiscalError as exc:
            return messages.encode_error(mid, exc)

    def _now(self):
        now = self.clock.now()
        if now is None:
            raise ClockError("CLOCK_UNSET", "the clock was not set since power-up; send SET_TIME")
        return max(now, self.last_time)

    def _nonce(self, fields):
        nonce = fields["nonce"]
        if len(nonce) != NONCE_LEN:
            raise MessageError("MESSAGE_FIELD", "nonce must be %d bytes" % NONCE_LEN)
        return nonce

    def _committed(self, nonce):
        """(fields, body, sig) of the invoice record that consumed ``nonce``, or None."""
        if self.nonces.committed_seq(nonce) is None and nonce in self.nonces.pending:
            return None
        hit = self.journal.find(nonce)
        if hit is None:
            return None
        fields, body, sig = record.decode(hit[1])
        if fields[record.K_TYPE] == record.INVOICE and fields.get(record.K_NONCE) == nonce:
            return fields, body, sig
        return None

    # -- messages ----------------------------------------------------------------------------
    def _on_info(self, fields):
        return {"device_id": self.device_id, "firmware": self.firmware, "protocol": PROTOCOL_VERSION,
                "public_key": self.signer.public_key() if self.signer else b"", "counter": self.counter, "seq": self.seq,
                "last_hash": self.last_hash, "clock": self.clock.now(), "pending": len(self.nonces.pending),
                "journal_used": self.journal.used(), "journal_size": self.journal.capacity(),
                "max_pending": self.nonces.max_pending, "nonce_ttl": self.nonces.ttl,
                "max_payload": MAX_PAYLOAD, "max_invoice": invoice.MAX_INVOICE, "last_time": self.last_time,
                "fault": self.fault, "certificate": self.certificate}

    def _on_ping(self, fields):
        if len(fields["data"]) > MAX_PING:
            raise MessageError("MESSAGE_FIELD", "PING data is limited to %d bytes" % MAX_PING)
        return {"data": fields["data"]}

    def _on_set_time(self, fields):
        t = fields["time"]
        if t < timefmt.MIN_TIME or t > timefmt.MAX_TIME:
            raise ClockError("TIME_INVALID", "time %d is outside %d..%d" % (t, timefmt.MIN_TIME, timefmt.MAX_TIME))
        if t < self.last_time:
            raise ClockError("CLOCK_BACKWARDS", "time %s is before the last record (%s)"
                             % (timefmt.format_time(t), timefmt.format_time(self.last_time)))
        now = self.clock.now()
        journaled = now is None or abs(t - now) > TIME_SLACK
        if journaled:
            extra = {} if now is None else {record.K_PREVIOUS_TIME: now}
            self._append(record.TIME, extra, t)
        self.clock.set(t)
        self.nonces.expire(t)
        return {"time": t, "journaled": journaled}

    def _on_prepare(self, fields):
        now = self._now()
        total, offset, data = fields["total"], fields["offset"], fields["data"]
        if total > invoice.MAX_INVOICE:
            raise InvoiceError("INVOICE_TOO_LARGE", "invoice of %d bytes; limit %d" % (total, invoice.MAX_INVOICE))
        if total < 1:
            raise InvoiceError("INVOICE_MALFORMED", "PREPARE total must be at least 1 byte")
        if offset == 0:
            self.nonces.check_room()   # refuse before the host uploads up to 16 KiB for nothing
            upload = [total, bytearray()]
        else:
            upload = self.upload
            if upload is None or upload[0] != total or offset != len(upload[1]):
                raise InvoiceError("CHUNK_SEQUENCE", "chunk at %d does not continue the upload (%s bytes received)"
                                  % (offset, "no" if upload is None else len(upload[1])))
        if offset + len(data) > total:
            raise InvoiceError("CHUNK_SEQUENCE", "chunk ends at %d, past the announced total %d" % (offset + len(data), total))
        upload[1].extend(data)
        self.upload = upload
        if len(upload[1]) < total:
            return {"received": len(upload[1])}
        self.upload = None
        canonical = bytes(upload[1])
        summary = invoice.decode(canonical, self.manifest)[1]
        nonce = self.entropy.random(NONCE_LEN)
        while self.nonces.known(nonce):
            nonce = self.entropy.random(NONCE_LEN)
        digest = hashlib.sha256(canonical).digest()
        entry = {"hash": digest, "summary": summary, "expires": now + self.nonces.ttl}
        self.nonces.add(nonce, entry)
        return {"received": total, "nonce": nonce, "expires": entry["expires"], "invoice_hash": digest,
                "subtotal": summary["subtotal"], "total_vat": summary["total_vat"],
                "total": summary["total"], "currency": summary["currency"]}

    def _on_commit(self, fields):
        nonce = self._nonce(fields)
        done = self._committed(nonce)
        if done is not None:
            return {"sealed": record.sealed_result(*done), "replayed": True}
        entry = self.nonces.pending.get(nonce)
        if entry is None:
            self.nonces.refuse_ended(nonce)
            raise NonceError("NONCE_UNKNOWN", "nonce was not issued since power-up; PREPARE the invoice again")
        now = self._now()
        summary = entry["summary"]
        signed = record.signed_groups(summary["groups"], summary["type"], invoice.CREDIT_TYPES)
        extra = {record.K_INVOICE_HASH: entry["hash"], record.K_NONCE: nonce,
                 record.K_INVOICE_TYPE: summary["type"], record.K_GROUPS: summary["groups"],
                 record.K_TOTAL: summary["total"], record.K_CURRENCY: summary["currency"],
                 record.K_CUMULATIVE: record.add_cumulative(self.cumulative, signed)}
        sealed = self._append(record.INVOICE, extra, now)
        self.nonces.mark_committed(nonce, sealed[0][record.K_SEQ])
        return {"sealed": record.sealed_result(*sealed), "replayed": False}

    def _on_abort(self, fields):
        nonce = self._nonce(fields)
        if nonce in self.nonces.pending:
            self.nonces.abort(nonce)
            return {"state": messages.ABORTED}
        state = self.nonces.ended_state(nonce)
        if state is not None:
            return {"state": state}
        if self._committed(nonce) is not None:
            raise NonceError("NONCE_COMMITTED", "nonce is already committed; issue a credit note instead")
        raise NonceError("NONCE_UNKNOWN", "nonce was not issued since power-up")

    def _on_status(self, fields):
        nonce = self._nonce(fields)
        entry = self.nonces.pending.get(nonce)
        if entry is not None:
            return {"state": messages.PREPARED, "expires": entry["expires"]}
        state = self.nonces.ended_state(nonce)
        if state is not None:
            return {"state": state}
        done = self._committed(nonce)
        if done is not None:
            return {"state": messages.COMMITTED, "sealed": record.sealed_result(*done)}
        return {"state": messages.UNKNOWN}

    def _on_read_journal(self, fields):
        first, count = fields["first"], fields["count"]
        if first < 1 or first > self.journal.count + 1 or count < 1:
            raise JournalError("RANGE_INVALID", "records are numbered 1..%d; asked for %d (+%d)"
                               % (self.journal.count, first, count))
        out, size, nxt = [], 0, first
        for seq, payload in self.journal.records(first):
            if len(out) == count or size + len(payload) > MAX_PAYLOAD - 64:
                break
            out.append(payload)
            size += len(payload) + 3
            nxt = seq + 1
        return {"records": out, "next": nxt, "last": self.journal.count}
