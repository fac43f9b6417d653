"""Keys and certificates as a verifier trusts them: a fast signature check backed by
``cryptography``, the public key file formats ``--pubkey``/``--authority`` accept, and the
certificate check of PROTOCOL.md section 4.14 (authority -> certificate).

Why a second signature check beside ``protocol/p256.py``: verifying a journal of thousands of
records in pure Python takes minutes; ``fast_verifier`` has the same contract as
``p256.verify`` (tests/test_verify_cli.py checks they agree) and runs at C speed.
"""

import re

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from device.ports import device_id_for
from hostd.errors import VerificationFailed
from protocol import cert, p256
from protocol.errors import VerifyError

_HEX = re.compile(r"\A(?:[0-9a-fA-F]{2})*\Z")


def authority_id(public_key):
    """``AUTH-`` and 8 hex digits of SHA-256(key): the id certificates name their issuer by."""
    return device_id_for(public_key, "AUTH")


def fast_verifier(public_key, low_s=True):
    """verify_sig(message, signature) for protocol.verify backed by ``cryptography``: the contract
    of p256.verify over SHA-256(message), and with ``low_s`` (records and heads, PROTOCOL.md 7.2)
    a high s is refused too. Certificates are checked with ``low_s=False``."""
    x, y = p256.decode_point(public_key)
    key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()

    def check(body, sig):
        if len(sig) != 64 or (low_s and not p256.is_low_s(sig)):
            return False
        der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:   # r or s outside [1, n-1] is InvalidSignature too (checked against p256.verify in tests)
            key.verify(der, bytes(body), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True
    return check


def load_public_key(path):
    """64-byte X || Y from a key file: raw 64 or 65 (0x04 ||) bytes, hex of either, or PEM SPKI."""
    with open(path, "rb") as fh:
        data = fh.read()
    where = "public key file %s" % path
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise VerificationFailed("%s: not a PEM PUBLIC KEY (%s)" % (where, exc), field="pubkey")
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise VerificationFailed("%s: not a P-256 public key" % where, field="pubkey")
        raw = p256.encode_point(key.public_numbers().x, key.public_numbers().y)
    elif len(data) == 64 or (len(data) == 65 and data[0] == 4):
        raw = data
    else:
        text = data.decode("ascii", "replace").strip()
        if not _HEX.match(text) or len(text) not in (128, 130):
            raise VerificationFailed("%s: expected 64 or 65 raw bytes, their hex, or a PEM PUBLIC KEY" % where,
                              field="pubkey")
        raw = bytes.fromhex(text)
    try:
        return p256.encode_point(*p256.decode_point(raw))
    except VerifyError as exc:
        raise VerificationFailed("%s: %s" % (where, exc.detail), field="pubkey")


def verify_certificate(data, authority_public_key):
    """Fields of a certificate whose signature verifies under the authority key, else VerificationFailed."""
    try:
        fields = cert.decode(data)
    except VerifyError as exc:
        raise VerificationFailed("certificate: %s" % exc.detail, field="certificate")
    expected = authority_id(authority_public_key)
    if fields[cert.C_AUTHORITY] != expected:
        raise VerificationFailed("certificate was issued by %s, not by the given authority %s"
                                 % (fields[cert.C_AUTHORITY], expected), field="certificate")
    if not fast_verifier(authority_public_key, low_s=False)(cert.tbs(fields), fields[cert.C_SIGNATURE]):
        raise VerificationFailed("certificate signature does not verify under authority %s" % expected,
                                 field="certificate")
    return fields
