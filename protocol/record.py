"""Journal records (protocol version 2): the exact bytes that are signed, and what derives from them.

A record is ``body || signature``: ``body`` a canonical CBOR map (keys below), ``signature`` raw
ECDSA P-256 r || s (64 bytes, low s) over SHA-256(``FMDREC2\\x00`` || prev || body), where prev
is the record hash of the previous record (GENESIS for seq 1). The previous hash is signed but not
stored, except in CHECKPOINT records, which anchor a chain whose earlier records were erased. The
record hash, shown to users as ``ledger_hash``, is SHA-256(prev || body || signature). Fiscal
number, auth code, timestamp text and QR payload are pure functions of the record and its prev,
so every way of asking for a sealed result returns the same bytes. PROTOCOL.md section 7.
"""

import binascii
import hashlib

from protocol import cbor, timefmt
from protocol.errors import CborError, VerifyError

INVOICE, TIME, POWER_UP, CHECKPOINT, EVENT, CLOSURE = 1, 2, 3, 4, 5, 6   # names: protocol/schema.py

SIG_LEN = 64
MAX_RECORD = 1920      # body and signature: the largest CLOSURE a valid profile allows fits (7.7)
REQUEST_ID_LEN = 16
HASH_LEN = 32

# Body keys. Key 0 (request id) only in INVOICE records: it sorts first, so an invoice body starts
# ``A? 00 50`` and its request id sits at offsets 3..19. Key 5 (prev) only in CHECKPOINT and CLOSURE
# records, which anchor a segment. Retired, never reused: 8 (v1 nonce), 14; 16 is CHECKPOINT totals
# (v1 kept it in invoices). A key may appear in several record types only with the same meaning.
K_REQUEST_ID = 0
K_TYPE, K_SEQ, K_COUNTER, K_TIME, K_PREV, K_DEVICE = 1, 2, 3, 4, 5, 6
K_INVOICE_HASH, K_INVOICE_TYPE, K_GROUPS, K_TOTAL, K_CURRENCY = 7, 9, 10, 11, 12
K_PREVIOUS_TIME, K_FIRMWARE, K_TOTALS, K_ARCHIVED, K_EVENT, K_DETAIL = 13, 15, 16, 19, 20, 21
K_ORIGINAL, K_CREDIT_ROOT = 17, 18                  # credit INVOICE; the root also in CHECKPOINT
K_KIND, K_PERIOD, K_RANGE, K_FISCAL, K_COUNTS = 22, 23, 24, 25, 26   # CLOSURE
K_FIGURES, K_MERKLE, K_CHAIN, K_END = 27, 28, 29, 30                 # CLOSURE
K_CLOSED, K_PROFILE = 31, 32                                         # CHECKPOINT

QR_PREFIX = "FMD2"
RECORD_DOMAIN = b"FMDREC2\x00"
HEAD_DOMAIN = b"FMDHEAD2"
HEAD_FORMAT = "FMDH2"
H_FORMAT, H_DEVICE, H_SEQ, H_COUNTER, H_HASH, H_TIME, H_CHALLENGE = 1, 2, 3, 4, 5, 6, 7
MAX_CHALLENGE = 64


def genesis():
    """The prev of record 1: SHA-256 of a published constant."""
    return hashlib.sha256(b"fiscal-device journal genesis v2").digest()


def signing_input(prev, body):
    """The message a record signature signs (its SHA-256 is the ECDSA digest)."""
    return RECORD_DOMAIN + bytes(prev) + bytes(body)


def record_hash(prev, rec):
    """SHA-256(prev || body || signature); ``rec`` is the stored record, body then signature."""
    h = hashlib.sha256(bytes(prev))
    h.update(bytes(rec))
    return h.digest()


def request_id_for(text):
    """16-byte request id of a host request key (PROTOCOL.md 4.6): the host passes its store key,
    ``1p:`` or ``2p:`` followed by the POS Idempotency-Key."""
    return hashlib.sha256(b"fiscal-request-id/1\n" + text.encode("utf-8")).digest()[:REQUEST_ID_LEN]


def type_of(rec):
    """Record type read from the canonical bytes, without decoding: an invoice body starts
    ``A? 00 50 <request id> 01 01``, every other body ``A? 01 <type>``."""
    return rec[20] if rec[1] == 0 else rec[2]


def signed_groups(groups, invoice_type, credit_types):
    """Invoice groups ``[code, rate, base, tax]`` as they enter the running totals
    ``[code, base, tax]``: credit types count negative."""
    sign = -1 if invoice_type in credit_types else 1
    return [[g[0], sign * g[2], sign * g[3]] for g in groups]


def add_totals(totals, groups):
    """Running net totals per tax group after adding ``groups`` ``[code, base, tax]``; zero entries
    dropped, sorted by code (PROTOCOL.md 7.5)."""
    acc = {}
    for code, base, tax in totals:
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


def decode(rec, index=None):
    """Split a stored record into (body map, body bytes, signature); VERIFY_RECORD if it is not a
    canonical CBOR map followed by 64 bytes. ``index`` (0-based) only names it in errors."""
    where = "record" if index is None else "record %d (index %d)" % (index + 1, index)
    if len(rec) <= SIG_LEN:
        raise VerifyError("VERIFY_RECORD", "%s is too short" % where, index)
    body = bytes(rec[:-SIG_LEN])
    try:
        fields = cbor.decode(body)
    except CborError as exc:
        raise VerifyError("VERIFY_RECORD", "%s: body %s" % (where, exc.detail), index)
    if not isinstance(fields, dict):
        raise VerifyError("VERIFY_RECORD", "%s: body is not a map" % where, index)
    return fields, body, bytes(rec[-SIG_LEN:])


def fiscal_number(device_id, counter):
    return "%s-%08d" % (device_id, counter)


def auth_code(signature):
    """12 hex digits of SHA-256(signature), grouped like the seed's ``H8F2-A9D3-9001``."""
    h = hashlib.sha256(signature).digest()[:6]
    text = "".join(["%02X" % b for b in h])
    return "%s-%s-%s" % (text[0:4], text[4:8], text[8:12])


def hexs(data):
    return binascii.hexlify(data).decode()


def qr_payload(fields, signature, ledger_hash):
    """``FMD2;device;fiscal_number;time;total;currency;auth_code;ledger_hash_hex`` (PROTOCOL.md 7.6)."""
    return ";".join([QR_PREFIX, fields[K_DEVICE], fiscal_number(fields[K_DEVICE], fields[K_COUNTER]),
                     timefmt.format_time(fields[K_TIME]), str(fields[K_TOTAL]), fields[K_CURRENCY],
                     auth_code(signature), hexs(ledger_hash)])


# Keys of the sealed-result map carried by COMMIT, SEAL, PREPARE (replayed) and STATUS responses.
S_FISCAL_NUMBER, S_COUNTER, S_AUTH_CODE, S_TIMESTAMP, S_QR = 1, 2, 3, 4, 5
S_DEVICE, S_LEDGER_HASH, S_RECORD, S_SIGNATURE, S_TIME, S_PREVIOUS_HASH = 6, 7, 8, 9, 10, 11


def sealed_result(fields, body, signature, prev):
    """The sealed result of an invoice record whose previous record hash is ``prev``."""
    ledger = record_hash(prev, body + signature)
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
        S_PREVIOUS_HASH: bytes(prev),
    }


def head_statement(device_id, seq, counter, head_hash, t, challenge):
    """The canonical CBOR statement HEAD signs (PROTOCOL.md 4.15); the signature is over
    SHA-256(``FMDHEAD2`` || statement)."""
    return cbor.encode({H_FORMAT: HEAD_FORMAT, H_DEVICE: device_id, H_SEQ: seq, H_COUNTER: counter,
                        H_HASH: bytes(head_hash), H_TIME: t, H_CHALLENGE: bytes(challenge)})
