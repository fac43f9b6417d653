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

Until PROVISION only messages that sign nothing are served (``UNSIGNED`` in device/core.py). Two
histories must never exist, so the key and the journal are tied together both ways:

- records but no key (a wiped keystore): fault KEY_MISSING, read-only; a new key would start a
  second history under the same journal;
- a key but not the journal it started (an erased or swapped journal partition, a redeploy onto
  another block device, another device's journal): fault JOURNAL_MISMATCH, read-only; otherwise the
  counter would restart at 1 under the same certified key. The keystore keeps an *anchor*, the
  hash of the journal's first record, written right after PROVISION's POWER_UP record; at boot the
  first record must hash to it and the last record must carry this device's id.

A keystore that cannot be read (an I/O error, not a missing file) is fault KEYSTORE_FAILURE.

Imported only when used, like device/credits.py: at power-up (``load``, ``anchor``) and by
PROVISION and CERTIFY (device/core.py), so a board's heap holds this code only meanwhile. The key
check every request passes (``Core._require_key``) and the faults it serves are in device/core.py.
"""

import hashlib

from protocol import p256, record
from protocol.errors import IdentityError, VerifyError
from device.ports import device_id_for
from device.signer import Signer, derive_secret


def load(core):
    """The key, device id and certificate from the keystore at power-up (``core.signer`` None
    without a key), or an identity fault."""
    core.signer = None
    core.device_id = ""
    core.certificate = b""
    try:
        core.certificate = core.keystore.certificate() or b""
        secret = core.keystore.secret()
        anchor_hash = core.keystore.anchor()
    except OSError as exc:
        core.fault = "KEYSTORE_FAILURE"
        core.fault_detail = "keystore unreadable: %s" % exc
        return
    if secret is None:
        if core.journal.last_seq:
            core.fault = "KEY_MISSING"
            core.fault_detail = "the journal has %d records but the key is gone" % core.journal.last_seq
        return
    core.signer = Signer(secret, core.table)
    core.device_id = core.keystore.device_id(core.signer.public_key())
    last = core.journal.last
    last_device = None if last is None else record.decode(last)[0][record.K_DEVICE]
    # Record 1 is erased once archived: then only a journal that says so (a checkpoint with
    # ``archived``) may lack it; a blank or swapped-in journal may not.
    if core.journal.first_seq() == 1:
        other = anchor_hash is not None and _first_hash(core) != anchor_hash
    else:
        other = anchor_hash is not None and core.journal.archived is None
    if other or last_device not in (None, core.device_id):
        core.fault = "JOURNAL_MISMATCH"
        core.fault_detail = ("this key started another journal (the first record differs, or the last "
                             "record is device %s's)" % last_device)


def _first_hash(core):
    return core.journal.chain(1)[1] if core.journal.first_seq() == 1 else None


def anchor(core):
    """Tie the key to the journal it started (after the first POWER_UP; journals from before
    anchors existed are adopted the same way at their next boot)."""
    if core.signer is None or core.fault:
        return
    try:
        if core.keystore.anchor() is None and core.journal.first_seq() == 1:
            core.keystore.store_anchor(_first_hash(core))
    except OSError as exc:
        core.fault = "KEYSTORE_FAILURE"
        core.fault_detail = "cannot store the journal anchor: %s" % exc


def on_provision(core, fields):
    created = core.signer is None
    if created:
        if core.journal.last_seq:
            raise IdentityError("KEY_MISSING", "the journal has records of a lost key; refusing a new one")
        secret = derive_secret(core.entropy.random(32))
        signer = Signer(secret, core.table)
        try:
            core.keystore.store_secret(secret)
        except (OSError, ValueError) as exc:
            raise IdentityError("KEYSTORE_FAILURE", "cannot store the key: %s" % exc)
        core.signer = signer
        core.device_id = core.keystore.device_id(signer.public_key())
        core.journal.resume()
        core._power_up()
        anchor(core)
    return {"device_id": core.device_id, "public_key": core.signer.public_key(), "created": created}


def _check_issuer(cert, parsed, pinned):
    """The pinned authority signed it (one pure-Python ECDSA verification: seconds on a board,
    once in the device's life). Without a pin, a bogus certificate stored first would block
    the real one for good, since a stored certificate is never replaced."""
    if parsed[cert.C_AUTHORITY] != device_id_for(pinned, "AUTH"):
        raise VerifyError("VERIFY_KEY", "certificate issued by %s, not by the pinned authority %s"
                          % (parsed[cert.C_AUTHORITY], device_id_for(pinned, "AUTH")))
    if not p256.verify(pinned, hashlib.sha256(cert.tbs(parsed)).digest(), parsed[cert.C_SIGNATURE]):
        raise VerifyError("VERIFY_KEY", "certificate signature does not verify under the pinned authority")


def on_certify(core, fields):
    from protocol import cert   # imported here: PROVISION and power-up do not need it

    data = fields["certificate"]
    try:
        pinned = core.keystore.authority()
    except OSError as exc:
        raise IdentityError("KEYSTORE_FAILURE", "cannot read the pinned authority key: %s" % exc)
    try:
        parsed = cert.decode(data)
        cert.check_subject(parsed, core.device_id, core.signer.public_key())
        if pinned is not None:
            _check_issuer(cert, parsed, pinned)
    except VerifyError as exc:
        raise IdentityError("CERT_REFUSED", exc.detail)
    if core.certificate:
        if core.certificate == data:
            return {"stored": False}
        raise IdentityError("CERT_PRESENT", "a different certificate is stored; it is never replaced")
    try:
        core.keystore.store_certificate(data)
    except OSError as exc:
        raise IdentityError("KEYSTORE_FAILURE", "cannot store the certificate: %s" % exc)
    core.certificate = bytes(data)
    if core.journal.fits([256], 1):   # the event when it fits: a full device is still certified
        core._append(record.EVENT, {record.K_EVENT: "certified", record.K_DETAIL: {
            1: hashlib.sha256(core.certificate).digest(), 2: parsed[cert.C_AUTHORITY]}}, core._time_or_last())
    return {"stored": True}
