"""SEAL_BATCH (PROTOCOL.md 4.24): the batch document a host uploads and the result of each item.

Shared by the device (MicroPython) and the host (CPython), like the rest of protocol/.

Document: a canonical CBOR array of 1..MAX_ITEMS entries ``[request id, invoice]``: the 16-byte
request id (PROTOCOL.md 4.6) and the canonical invoice bytes (section 6), at most MAX_BATCH bytes
in all. It is uploaded in chunks exactly like a SEAL (total, offset, data).

Item result, one per entry and in entry order: ``[0, seq, replayed]`` when the invoice is sealed
as journal record ``seq`` (``replayed`` true when its request id was sealed before and nothing was
written for it), or ``[code, detail]`` when it was refused (an error code of section 5 and at most
MAX_DETAIL characters of explanation).
"""

from protocol import cbor, record
from protocol.errors import CborError, MessageError

MAX_BATCH = 8192      # bytes of the whole document: the device buffers it (a board's heap)
MAX_ITEMS = 16        # entries: their results always fit one answer beside some records
MAX_DETAIL = 60       # characters of a refused item's detail text


def _head(n):
    """Bytes of a CBOR head announcing length ``n``."""
    return 1 if n < 24 else 2 if n < 0x100 else 3 if n < 0x10000 else 5


def entry_size(invoice_len):
    """Encoded bytes one entry adds to the document (the array head excluded)."""
    return 1 + 1 + record.REQUEST_ID_LEN + _head(invoice_len) + invoice_len


def document_size(invoice_lens):
    """Encoded bytes of a document holding invoices of these lengths."""
    total = _head(len(invoice_lens))
    for n in invoice_lens:
        total += entry_size(n)
    return total


def encode(items):
    """[(request id, canonical invoice)] -> the document bytes."""
    return cbor.encode([[bytes(rid), bytes(canonical)] for rid, canonical in items])


def decode(data):
    """Document bytes -> [(request id, canonical invoice)]; BATCH_MALFORMED otherwise."""
    if len(data) > MAX_BATCH:
        raise MessageError("BATCH_MALFORMED", "batch of %d bytes; limit %d" % (len(data), MAX_BATCH))
    try:
        doc = cbor.decode(data)
    except CborError as exc:
        raise MessageError("BATCH_MALFORMED", "batch is not canonical CBOR: %s" % exc.detail)
    if not isinstance(doc, list) or not 1 <= len(doc) <= MAX_ITEMS:
        raise MessageError("BATCH_MALFORMED", "batch must be an array of 1 to %d entries" % MAX_ITEMS)
    out = []
    for i in range(len(doc)):
        entry = doc[i]
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], bytes) \
                or len(entry[0]) != record.REQUEST_ID_LEN or not isinstance(entry[1], bytes) or not entry[1]:
            raise MessageError("BATCH_MALFORMED", "entry %d must be [16-byte request id, invoice bytes]" % i)
        out.append((entry[0], entry[1]))
    return out


def refused(exc):
    """The item result of a refusal (a FiscalError)."""
    return [exc.code, exc.detail[:MAX_DETAIL]]


def sealed_from(first, prev, records, decode=None):
    """{seq: sealed result} of the INVOICE records among ``records`` (record ``first`` on, whose
    previous record hash is ``prev``), derived as PROTOCOL.md 7.6 says: what a host builds from a
    SEAL_BATCH answer and the READ_JOURNAL pages after it. ``decode``: record.decode or a host's
    faster one with its contract."""
    decode = decode or record.decode
    out = {}
    for i in range(len(records)):
        fields, body, sig = decode(records[i])
        if fields[record.K_SEQ] != first + i:
            raise MessageError("BATCH_MALFORMED", "record %d carries seq %d" % (first + i, fields[record.K_SEQ]))
        if fields[record.K_TYPE] == record.INVOICE:
            out[first + i] = record.sealed_result(fields, body, sig, prev)
        prev = record.record_hash(prev, records[i])
    return out
