"""The authority's checks of an upload (docs/SYNC.md "What the authority checks").

An upload is accepted whole or not at all. In order:

1. the document's shape (hostd/books/upload.py ``parse``): SYNC_INVALID naming the field;
2. the device certificate: it must verify under one of the trusted authority keys (the one whose
   id it names) and be issued to this device id; a device already registered keeps its key for
   ever, so records re-signed with another key are refused even with a valid certificate for it
   (SYNC_CERTIFICATE, 403);
3. records the authority already holds must be byte for byte the ones it holds (SYNC_CONFLICT,
   409: a duplicated-but-different record), and are acknowledged again;
4. the new records must continue the held chain at ``head + 1`` (SYNC_GAP, 409, with
   ``expected_seq``);
5. each new record passes the checks of ``fiscal verify``, record by record, continuing the walk of
   everything held before it (protocol/verify.py ``Walker``): canonical CBOR, schema, signature
   over the previous hash with the device key, low s, seq and counter continuity, time order,
   request ids, checkpoint totals and archived hashes; and an invoice's canonical bytes must be
   the ones its record signs (SHA-256) (SYNC_FORGED, 422, naming the seq and the verifier rule).

A device's walk is kept in memory between uploads and rebuilt from the stored records after a
restart or a refused upload (a refused record leaves a walk part-way): one pass over the device's
history, then each upload costs only its own records.
"""

import hashlib
import threading

from hostd.authority.ledger import HeadMoved
from hostd.books import upload
from hostd.books.keys import fast_verifier, verify_certificate
from hostd.errors import UploadConflict, UploadForged, UploadGap, UploadUncertified, VerificationFailed
from protocol import cert, record, timefmt, verify
from protocol.errors import FiscalError, VerifyError


class Intake:
    def __init__(self, ledger, authority_keys):
        """``authority_keys``: the trusted authority public keys (64 bytes each), by authority id."""
        self.ledger = ledger
        self.keys = dict(authority_keys)
        self.walks = {}
        self.guard = threading.Lock()
        self.locks = {}

    def _lock(self, device_id):
        with self.guard:
            return self.locks.setdefault(device_id, threading.Lock())

    def receive(self, device_id, doc, now):
        """Check and store one upload; its acknowledgement (dict), or an UploadRefused."""
        certificate, rows = upload.parse(doc, device_id)
        with self._lock(device_id):
            try:
                return self._receive(device_id, certificate, rows, now)
            except BaseException:
                self.walks.pop(device_id, None)   # rebuilt from what is stored at the next upload
                raise

    def _receive(self, device_id, certificate, rows, now):
        known = self.ledger.device(device_id)
        key, new_device = self._key(device_id, certificate, known)
        head = known["head_seq"] if known else 0
        first, last = rows[0][0], rows[-1][0]
        held = self.ledger.held(device_id, first, min(last, head)) if first <= head else {}
        for seq, rec, _ in rows:
            if seq <= head and held.get(seq) != rec:
                raise UploadConflict("record %d differs from the record %d the authority holds for %s"
                                     % (seq, seq, device_id), "records", seq=seq)
        fresh = [row for row in rows if row[0] > head]
        if fresh and fresh[0][0] != head + 1:
            raise UploadGap("the authority holds %s up to record %d: the next upload must start at %d, not %d"
                            % (device_id, head, head + 1, fresh[0][0]), "records", seq=fresh[0][0],
                            expected_seq=head + 1)
        stamp = timefmt.format_time(int(now))
        accepted, invoices = self._check(device_id, key, fresh, stamp) if fresh else ([], [])
        if accepted:
            try:
                self.ledger.accept(device_id, new_device, head, accepted, invoices, stamp)
            except HeadMoved:
                moved = self.ledger.device(device_id)["head_seq"]
                raise UploadGap("another upload extended %s to record %d meanwhile" % (device_id, moved),
                                "records", expected_seq=moved + 1)
        hashes = self.ledger.hashes(device_id, first, last) if not accepted or first <= head else {}
        hashes.update((seq, digest) for seq, _, _, digest in accepted)
        numbers = {inv["seq"]: inv["fiscal_number"] for inv in invoices}
        acked = []
        for seq, rec, _ in rows:
            item = {"seq": seq, "hash": hashes[seq].hex()}
            fields = record.decode(rec)[0]
            if fields[record.K_TYPE] == record.INVOICE:
                item["fiscal_number"] = numbers.get(seq) or record.fiscal_number(device_id, fields[record.K_COUNTER])
            acked.append(item)
        now_head = self.ledger.device(device_id)
        return {"status": "ok", "device_id": device_id, "acknowledged_at": stamp, "acknowledged": acked,
                "head": {"seq": now_head["head_seq"], "hash": bytes(now_head["head_hash"]).hex()}}

    def _key(self, device_id, certificate, known):
        """(the device key, the devices row to create or None)."""
        if certificate is None:
            if known is None:
                raise UploadUncertified("the authority does not know %s: the first upload carries its certificate"
                                        % device_id, "certificate")
            return bytes(known["public_key"]), None
        try:
            fields = cert.decode(certificate)
            issuer = self.keys.get(fields[cert.C_AUTHORITY])
            if issuer is None:
                raise UploadUncertified("the certificate was issued by %s, which this authority does not trust"
                                        % fields[cert.C_AUTHORITY], "certificate")
            fields = verify_certificate(certificate, issuer)
        except (VerifyError, VerificationFailed) as exc:
            raise UploadUncertified(exc.detail, "certificate")
        if fields[cert.C_DEVICE] != device_id:
            raise UploadUncertified("the certificate is issued to %s, not to %s" % (fields[cert.C_DEVICE], device_id),
                                    "certificate")
        key = fields[cert.C_PUBLIC_KEY]
        if known is not None:
            if bytes(known["public_key"]) != key:
                raise UploadUncertified("%s is registered with another public key: records signed with a new key "
                                        "are refused" % device_id, "certificate")
            return key, None
        return key, {"device_id": device_id, "public_key": key, "certificate": certificate,
                     "authority_id": fields[cert.C_AUTHORITY], "head_hash": record.genesis()}

    def _walker(self, device_id, key):
        walker = self.walks.get(device_id)
        if walker is None:
            walker = verify.Walker(key, fast_verifier(key))
            for _, rec in self.ledger.records(device_id):
                walker.feed(bytes(rec))
            self.walks[device_id] = walker
        return walker

    def _check(self, device_id, key, fresh, stamp):
        walker = self._walker(device_id, key)
        accepted, invoices = [], []
        for seq, rec, canonical in fresh:
            try:
                fields = walker.feed(rec)
            except FiscalError as exc:
                refused = UploadForged("record %d: %s (%s)" % (seq, exc.detail, exc.name), "records", seq=seq)
                refused.rule = exc.name
                raise refused
            if fields[record.K_DEVICE] != device_id:
                raise UploadForged("record %d belongs to %s" % (seq, fields[record.K_DEVICE]), "records", seq=seq)
            rtype = fields[record.K_TYPE]
            if rtype == record.INVOICE:
                if canonical is not None and hashlib.sha256(canonical).digest() != fields[record.K_INVOICE_HASH]:
                    raise UploadForged("record %d: the canonical invoice sent is not the one the record signs" % seq,
                                       "canonical", seq=seq)
                invoices.append({"fiscal_number": record.fiscal_number(device_id, fields[record.K_COUNTER]),
                                 "device_id": device_id, "seq": seq, "counter": fields[record.K_COUNTER],
                                 "invoice_hash": fields[record.K_INVOICE_HASH], "canonical": canonical,
                                 "invoice_type": fields[record.K_INVOICE_TYPE], "total": fields[record.K_TOTAL],
                                 "currency": fields[record.K_CURRENCY], "sealed_time": fields[record.K_TIME],
                                 "acknowledged_at": stamp})
            accepted.append((seq, rtype, rec, walker.state.prev))
        return accepted, invoices
