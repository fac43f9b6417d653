"""The device's identity inside the core: its key, its id and its certificate (issue 4).

A factory-fresh device has no key. PROVISION makes one *inside* the device, from the entropy port
(os.urandom on a board), stores it through the keystore port and answers only the public key; a
device that already has a key answers the same key again, so provisioning can be retried after a
lost answer and never rotates a key under a journal. CERTIFY stores the certificate an authority
issued for that public key (protocol/cert.py) after checking that it names this device and this
key and, when the keystore holds a pinned authority key (installed with the firmware:
``fiscal board deploy --authority``), that this authority signed it; INFO reports it, and `fiscal verify --authority` checks the chain authority -> certificate ->
public key -> every journal record. A stored certificate is journaled as EVENT ``certified``
(its SHA-256 and the authority id), when the journal has room for it.

Until PROVISION only messages that sign nothing are served (UNSIGNED). Two histories must never
exist, so the key and the journal are tied together both ways:

- records but no key (a wiped keystore): fault KEY_MISSING, read-only; a new key would start a
  second history under the same journal;
- a key but not the journal it started (an erased or swapped journal partition, a redeploy onto
  another block device, another device's journal): fault JOURNAL_MISMATCH, read-only; otherwise the
  counter would restart at 1 under the same certified key. The keystore keeps an *anchor*, the
  hash of the journal's first record, written right after PROVISION's POWER_UP record; at boot the
  first record must hash to it and the last record must carry this device's id.

A keystore that cannot be read (an I/O error, not a missing file) is fault KEYSTORE_FAILURE.
"""

import hashlib

from protocol import p256, record
from protocol.errors import IdentityError, VerifyError
from device.ports import device_id_for
from device.signer import Signer, derive_secret

UNSIGNED = ("INFO", "PING", "PROVISION", "READ_JOURNAL")
READ_ONLY = ("INFO", "PING", "READ_JOURNAL")
IDENTITY_FAULTS = ("KEY_MISSING", "JOURNAL_MISMATCH", "KEYSTORE_FAILURE")


class Identity:
    """Mixed into device.core.Core: expects ``keystore``, ``table``, ``entropy``, ``journal``."""

    def _load_identity(self):
        self.signer = None
        self.device_id = ""
        self.certificate = b""
        try:
            self.certificate = self.keystore.certificate() or b""
            secret = self.keystore.secret()
            anchor = self.keystore.anchor()
        except OSError as exc:
            self.fault = "KEYSTORE_FAILURE"
            self.fault_detail = "keystore unreadable: %s" % exc
            return
        if secret is None:
            if self.journal.last_seq:
                self.fault = "KEY_MISSING"
                self.fault_detail = "the journal has %d records but the key is gone" % self.journal.last_seq
            return
        self.signer = Signer(secret, self.table)
        self.device_id = self.keystore.device_id(self.signer.public_key())
        last_device = None
        if self.journal.last is not None:
            last_device = record.decode(self.journal.last)[0][record.K_DEVICE]
        # Record 1 is erased once archived: then only a journal that says so (a checkpoint with
        # ``archived``) may lack it; a blank or swapped-in journal may not.
        if self.journal.first_seq() == 1:
            other = anchor is not None and self._first_hash() != anchor
        else:
            other = anchor is not None and self.journal.archived is None
        if other or last_device not in (None, self.device_id):
            self.fault = "JOURNAL_MISMATCH"
            self.fault_detail = ("this key started another journal (the first record differs, or the last "
                                 "record is device %s's)" % last_device)

    def _first_hash(self):
        return self.journal.chain(1)[1] if self.journal.first_seq() == 1 else None

    def _anchor(self):
        """Tie the key to the journal it started (after the first POWER_UP; journals from before
        anchors existed are adopted the same way at their next boot)."""
        if self.signer is None or self.fault:
            return
        try:
            if self.keystore.anchor() is None and self.journal.first_seq() == 1:
                self.keystore.store_anchor(self._first_hash())
        except OSError as exc:
            self.fault = "KEYSTORE_FAILURE"
            self.fault_detail = "cannot store the journal anchor: %s" % exc

    def _require_key(self, name):
        if self.fault in IDENTITY_FAULTS and name not in READ_ONLY:
            raise IdentityError(self.fault, self.fault_detail)
        if self.signer is None and name not in UNSIGNED:
            raise IdentityError("NOT_PROVISIONED", "%s needs the device key: send PROVISION first" % name)

    def _on_provision(self, fields):
        created = self.signer is None
        if created:
            if self.journal.last_seq:
                raise IdentityError("KEY_MISSING", "the journal has records of a lost key; refusing a new one")
            secret = derive_secret(self.entropy.random(32))
            signer = Signer(secret, self.table)
            try:
                self.keystore.store_secret(secret)
            except (OSError, ValueError) as exc:
                raise IdentityError("KEYSTORE_FAILURE", "cannot store the key: %s" % exc)
            self.signer = signer
            self.device_id = self.keystore.device_id(signer.public_key())
            self.journal.resume()
            self._power_up()
            self._anchor()
        return {"device_id": self.device_id, "public_key": self.signer.public_key(), "created": created}

    @staticmethod
    def _check_issuer(cert, parsed, pinned):
        """The pinned authority signed it (one pure-Python ECDSA verification: seconds on a board,
        once in the device's life). Without a pin, a bogus certificate stored first would block
        the real one for good, since a stored certificate is never replaced."""
        if parsed[cert.C_AUTHORITY] != device_id_for(pinned, "AUTH"):
            raise VerifyError("VERIFY_KEY", "certificate issued by %s, not by the pinned authority %s"
                              % (parsed[cert.C_AUTHORITY], device_id_for(pinned, "AUTH")))
        if not p256.verify(pinned, hashlib.sha256(cert.tbs(parsed)).digest(), parsed[cert.C_SIGNATURE]):
            raise VerifyError("VERIFY_KEY", "certificate signature does not verify under the pinned authority")

    def _on_certify(self, fields):
        from protocol import cert   # once in a device's life: not kept in a board's RAM (device/core.py)

        data = fields["certificate"]
        try:
            pinned = self.keystore.authority()
        except OSError as exc:
            raise IdentityError("KEYSTORE_FAILURE", "cannot read the pinned authority key: %s" % exc)
        try:
            parsed = cert.decode(data)
            cert.check_subject(parsed, self.device_id, self.signer.public_key())
            if pinned is not None:
                self._check_issuer(cert, parsed, pinned)
        except VerifyError as exc:
            raise IdentityError("CERT_REFUSED", exc.detail)
        if self.certificate:
            if self.certificate == data:
                return {"stored": False}
            raise IdentityError("CERT_PRESENT", "a different certificate is stored; it is never replaced")
        try:
            self.keystore.store_certificate(data)
        except OSError as exc:
            raise IdentityError("KEYSTORE_FAILURE", "cannot store the certificate: %s" % exc)
        self.certificate = bytes(data)
        if self.journal.fits([256], 1):   # the event when it fits: a full device is still certified
            self._append(record.EVENT, {record.K_EVENT: "certified", record.K_DETAIL: {
                1: hashlib.sha256(self.certificate).digest(), 2: parsed[cert.C_AUTHORITY]}}, self._time_or_last())
        return {"stored": True}
