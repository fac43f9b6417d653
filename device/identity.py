"""The device's identity inside the core: its key, its id and its certificate (issue 4).

A factory-fresh device has no key. PROVISION makes one *inside* the device, from the entropy port
(os.urandom on a board), stores it through the keystore port and answers only the public key; a
device that already has a key answers the same key again, so provisioning can be retried after a
lost answer and never rotates a key under a journal. CERTIFY stores the certificate an authority
issued for that public key (protocol/cert.py) after checking that it names this device and this
key; INFO reports it, and `fiscal verify --authority` checks the chain authority -> certificate ->
public key -> every journal record.

Until PROVISION only messages that sign nothing are served (UNSIGNED); a device whose journal has
records but whose key is gone (a wiped keystore) stays read-only with fault KEY_MISSING, because a
new key would start a second history under the same journal.
"""

from protocol import cert
from protocol.errors import IdentityError, VerifyError
from device.signer import Signer, derive_secret

UNSIGNED = ("INFO", "PING", "PROVISION", "READ_JOURNAL")


class Identity:
    """Mixed into device.core.Core: expects ``keystore``, ``table``, ``entropy``, ``journal``."""

    def _load_identity(self):
        self.signer = None
        self.device_id = ""
        self.certificate = self.keystore.certificate() or b""
        secret = self.keystore.secret()
        if secret is None:
            if self.journal.count:
                self.fault = "KEY_MISSING"
            return
        self.signer = Signer(secret, self.table)
        self.device_id = self.keystore.device_id()

    def _require_key(self, name):
        if self.signer is None and name not in UNSIGNED:
            if self.fault == "KEY_MISSING":
                raise IdentityError("KEY_MISSING", "the journal has %d records but the key is gone" % self.journal.count)
            raise IdentityError("NOT_PROVISIONED", "%s needs the device key: send PROVISION first" % name)

    def _on_provision(self, fields):
        created = self.signer is None
        if created:
            if self.journal.count:
                raise IdentityError("KEY_MISSING", "the journal has records of a lost key; refusing a new one")
            secret = derive_secret(self.entropy.random(32))
            signer = Signer(secret, self.table)
            try:
                self.keystore.store_secret(secret)
            except (OSError, ValueError) as exc:
                raise IdentityError("KEYSTORE_FAILURE", "cannot store the key: %s" % exc)
            self.signer = signer
            self.device_id = self.keystore.device_id()
            self._power_up()
        return {"device_id": self.device_id, "public_key": self.signer.public_key(), "created": created}

    def _on_certify(self, fields):
        data = fields["certificate"]
        try:
            cert.check_subject(cert.decode(data), self.device_id, self.signer.public_key())
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
        return {"stored": True}
