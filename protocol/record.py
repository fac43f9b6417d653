"""Journal records: the exact bytes that are signed, and everything derived from them.

A record is ``body || signature``. ``body`` is a canonical CBOR map (keys below); ``signature``
is ECDSA P-256 over SHA-256(body), raw r||s (64 bytes). The record hash, shown to users as
``ledger_hash``, is SHA-256(body || signature); each body carries the previous record's hash
(GENESIS for the first), so the journal is one chain. Fiscal number, auth code, timestamp text and
QR payload are pure functions of the record, so COMMIT, a replayed COMMIT and STATUS after a power
cut all return byte-identical sealed results. PROTOCOL.md section "Journal records" is the spec.
"""

import hashlib

from protocol import cbor, timefmt
from protocol.errors import CborError, VerifyError

INVOICE = 1
TIME = 2
POWER_UP = 3
TYPE_NAMES = {INVOICE: "invoice", TIME: "time", POWER_UP: "power_up"}

SIG_LEN = 64

# Body keys. Common to all records: 1-6.  Invoice records: 7-12 and 16.  Time records: 13.
K_TYPE, K_SEQ, K_COUNTER, K_TIME, K_PREV, K_DEVICE = 1, 2, 3, 4, 5, 6
K_INVOICE_HASH, K_NONCE, K_INVOICE_TYPE, K_GROUPS, K_TOTAL, K_CURRENCY = 7, 8, 9, 10, 11, 12
K_PREVIOUS_TIME, K_FIRMWARE, K_CUMULATIVE = 13, 15, 16

QR_PREFIX = "FMD1"


def genesis():
    """The fixed 'previous hash' of the first record: SHA-256 of a published constant."""
    return hashlib.sha256(b"fiscal-device journal genesis v1").digest()


def record_hash(body, signature):
    return hashlib.sha256(body + signature).digest()


def signed_groups(groups, invoice_type, credit_types):
    """Per-group amounts as they enter the running totals: credit notes count negative."""
    sign = -1 if invoice_type in credit_types else 1
    return [[g[0], sign * g[1], sign * g[2]] for g in groups]


def add_cumulative(cumulative, groups):
    """Running net totals per tax group after adding ``groups``; zero entries dropped, sorted."""
    acc = {}
    for code, base, tax in cumulative:
        acc[code] = [base, tax]
    for code, base, tax in groups:
        cur = acc.get(code, [0, 0])
        acc[code] = [cur[0] + base, cur[1] + tax]
    out = []
    for code in sorted(acc):
        if acc[code][0] or acc[code][1]:
            out.append([code, acc[code][0], acc[code][1]])
    return out


def encode_body(fields):
    """Encode a body map (keys above). Canonical CBOR makes the byte layout unique."""
    return cbor.encode(fields)


def decode(record_bytes, index=None):
    """Split a stored record into (body map, body bytes, signature); VERIFY_RECORD if malformed.

    ``index`` is the record's 0-based position, only used to name it in errors.
    """
    where = "record" if index is None else "record %d (index %d)" % (index + 1, index)
    if len(record_bytes) <= SIG_LEN:
        raise VerifyError("VERIFY_RECORD", "%s is too short" % where, index)
    body = record_bytes[:-SIG_LEN]
    try:
        fields = cbor.decode(body)
    except CborError as exc:
        raise VerifyError("VERIFY_RECORD", "%s: body %s" % (where, exc.detail), index)
    if not isinstance(fields, dict):
        raise VerifyError("VERIFY_RECORD", "%s: body is not a map" % where, index)
    for key in (K_TYPE, K_SEQ, K_COUNTER, K_TIME, K_PREV, K_DEVICE):
        if key not in fields:
            raise VerifyError("VERIFY_RECORD", "%s: body lacks key %d" % (where, key), index)
    return fields, body, record_bytes[-SIG_LEN:]


def fiscal_number(device_id, counter):
    return "%s-%08d" % (device_id, counter)


def auth_code(signature):
    """12 hex digits of SHA-256(signature), grouped like the seed's ``H8F2-A9D3-9001``."""
    h = hashlib.sha256(signature).digest()[:6]
    text = "".join(["%02X" % b for b in h])
    return "%s-%s-%s" % (text[0:4], text[4:8], text[8:12])


def qr_payload(fields, signature, ledger_hash):
    """``FMD1;device;fiscal_number;time;total;currency;auth_code;ledger_hash_hex``.

    Enough for a phone to show the seal and to look the record up; with the journal record and
    the device public key it verifies offline (PROTOCOL.md, "Verifying a receipt").
    """
    return ";".join([QR_PREFIX, fields[K_DEVICE], fiscal_number(fields[K_DEVICE], fields[K_COUNTER]),
                     timefmt.format_time(fields[K_TIME]), str(fields[K_TOTAL]), fields[K_CURRENCY],
                     auth_code(signature), "".join(["%02x" % b for b in ledger_hash])])


# Keys of the sealed-result map carried by COMMIT and STATUS responses.
S_FISCAL_NUMBER, S_COUNTER, S_AUTH_CODE, S_TIMESTAMP, S_QR = 1, 2, 3, 4, 5
S_DEVICE, S_LEDGER_HASH, S_RECORD, S_SIGNATURE, S_TIME = 6, 7, 8, 9, 10


def sealed_result(fields, body, signature):
    """The sealed result of an invoice record, as a map with the S_* keys."""
    ledger = record_hash(body, signature)
    return {
        S_FISCAL_NUMBER: fiscal_number(fields[K_DEVICE], fields[K_COUNTER]),
        S_COUNTER: fields[K_COUNTER],
        S_AUTH_CODE: auth_code(signature),
        S_TIMESTAMP: timefmt.format_time(fields[K_TIME]),
        S_QR: qr_payload(fields, signature, ledger),
        S_DEVICE: fields[K_DEVICE],
        S_LEDGER_HASH: ledger,
        S_RECORD: body,
        S_SIGNATURE: signature,
        S_TIME: fields[K_TIME],
    }
