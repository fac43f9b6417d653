"""Device certificates: an authority's signature binding a device id to the device's public key.

Why our own format and not X.509: the device must parse and check the certificate it is asked to
store (CERTIFY) with nothing but this package in MicroPython, and X.509's DER would need a parser
three times the size of the whole codec. The certificate is a canonical CBOR map (protocol/cbor.py),
so it has exactly one encoding, and its signature is the one the journal uses: ECDSA P-256 over
SHA-256, raw r || s (SEC 1 4.1.3), made by the authority's key.

    {1: "FMDC1", 2: device_id, 3: device public key (64 bytes X || Y),
     4: authority id, 5: issued (Unix seconds), 6: signature (64 bytes)}

The signed bytes (``tbs``) are the same map without key 6, canonically encoded. The authority id is
``AUTH-`` + 8 hex digits of SHA-256(authority public key) (device.ports.device_id_for), so a
verifier holding several authority keys picks the right one. PROTOCOL.md "Device certificates".
"""

from protocol import cbor
from protocol.errors import CborError, VerifyError

FORMAT = "FMDC1"
C_FORMAT, C_DEVICE, C_PUBLIC_KEY, C_AUTHORITY, C_ISSUED, C_SIGNATURE = 1, 2, 3, 4, 5, 6
MAX_CERT = 512
_TYPES = {C_FORMAT: str, C_DEVICE: str, C_PUBLIC_KEY: bytes, C_AUTHORITY: str, C_ISSUED: int,
          C_SIGNATURE: bytes}


def tbs(fields):
    """The bytes the authority signs: the certificate map without its signature."""
    body = {}
    for key in fields:
        if key != C_SIGNATURE:
            body[key] = fields[key]
    return cbor.encode(body)


def encode(device_id, public_key, authority_id, issued, signature):
    return cbor.encode({C_FORMAT: FORMAT, C_DEVICE: device_id, C_PUBLIC_KEY: public_key,
                        C_AUTHORITY: authority_id, C_ISSUED: issued, C_SIGNATURE: signature})


def decode(data):
    """Certificate bytes -> field map, checked for shape; VERIFY_KEY when it is not one."""
    if not isinstance(data, (bytes, bytearray)) or not 0 < len(data) <= MAX_CERT:
        raise VerifyError("VERIFY_KEY", "a certificate is 1..%d bytes" % MAX_CERT)
    try:
        fields = cbor.decode(bytes(data))
    except CborError as exc:
        raise VerifyError("VERIFY_KEY", "certificate is not canonical CBOR: %s" % exc.detail)
    if not isinstance(fields, dict):
        raise VerifyError("VERIFY_KEY", "certificate is not a map")
    for key in fields:
        if key not in _TYPES:
            raise VerifyError("VERIFY_KEY", "certificate has unknown key %r" % (key,))
    for key in _TYPES:
        value = fields.get(key)
        if value is None or not isinstance(value, _TYPES[key]) or value is True or value is False:
            raise VerifyError("VERIFY_KEY", "certificate key %d is missing or not %s" % (key, _TYPES[key].__name__))
    if fields[C_FORMAT] != FORMAT:
        raise VerifyError("VERIFY_KEY", "certificate format %r is not %s" % (fields[C_FORMAT], FORMAT))
    if len(fields[C_PUBLIC_KEY]) != 64 or len(fields[C_SIGNATURE]) != 64:
        raise VerifyError("VERIFY_KEY", "certificate key and signature must be 64 bytes each")
    return fields


def check_subject(fields, device_id, public_key):
    """Refuse a certificate issued to another device (the device checks this before storing)."""
    if fields[C_PUBLIC_KEY] != public_key:
        raise VerifyError("VERIFY_KEY", "certificate is for another public key")
    if fields[C_DEVICE] != device_id:
        raise VerifyError("VERIFY_KEY", "certificate names device %s, not %s" % (fields[C_DEVICE], device_id))
