"""A certificate authority for device keys, for development and tests (issue 4).

In production the tax authority (or the manufacturer on its behalf) keeps this key in an HSM;
``fiscal authority`` exists so a developer can run the whole chain on a laptop:
``init`` makes a P-256 key pair in a directory, ``issue`` signs a device certificate
(protocol/cert.py, PROTOCOL.md section 4.14) and :func:`verify_certificate` is what
``fiscal verify --authority`` runs. The private key is written with mode 0600 and never printed.
"""

import os
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from hostd.errors import InvalidPayload
from hostd.books.keys import authority_id, load_public_key
from protocol import cert, p256
from protocol.errors import VerifyError

KEY_FILE = "authority.key"
PUB_FILE = "authority.pub"


def _raw(public):
    numbers = public.public_numbers()
    return p256.encode_point(numbers.x, numbers.y)


def init(directory):
    """Create the key pair in ``directory``; refuses to overwrite one. Returns (id, public key)."""
    os.makedirs(directory, exist_ok=True)
    key_path = os.path.join(directory, KEY_FILE)
    if os.path.exists(key_path):
        raise InvalidPayload("%s exists already; an authority key is never replaced" % key_path)
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    with open(os.path.join(directory, PUB_FILE), "wb") as fh:
        fh.write(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    raw = _raw(private.public_key())
    return authority_id(raw), raw


def _private(directory):
    path = os.path.join(directory, KEY_FILE)
    try:
        with open(path, "rb") as fh:
            return serialization.load_pem_private_key(fh.read(), None)
    except FileNotFoundError:
        raise InvalidPayload("no authority key in %s: run `fiscal authority init --dir %s`" % (directory, directory))
    except ValueError as exc:
        raise InvalidPayload("%s is not a PEM private key: %s" % (path, exc))


def public_key(directory):
    path = os.path.join(directory, PUB_FILE)
    if not os.path.isfile(path):
        raise InvalidPayload("no authority in %s (no %s): run `fiscal authority init --dir %s`"
                             % (directory, PUB_FILE, directory))
    return load_public_key(path)


def issue(directory, device_id, device_public_key, issued=None):
    """Certificate bytes binding ``device_id`` to the 64-byte ``device_public_key``."""
    try:
        device_public_key = p256.encode_point(*p256.decode_point(bytes(device_public_key)))
    except VerifyError as exc:
        raise InvalidPayload("device public key: %s" % exc.detail, field="public_key")
    if not device_id:
        raise InvalidPayload("a certificate needs the device id", field="device_id")
    private = _private(directory)
    fields = {cert.C_FORMAT: cert.FORMAT, cert.C_DEVICE: device_id, cert.C_PUBLIC_KEY: device_public_key,
              cert.C_AUTHORITY: authority_id(_raw(private.public_key())),
              cert.C_ISSUED: int(time.time()) if issued is None else issued}
    r, s = utils.decode_dss_signature(private.sign(cert.tbs(fields), ec.ECDSA(hashes.SHA256())))
    return cert.encode(fields[cert.C_DEVICE], fields[cert.C_PUBLIC_KEY], fields[cert.C_AUTHORITY],
                       fields[cert.C_ISSUED], r.to_bytes(32, "big") + s.to_bytes(32, "big"))
