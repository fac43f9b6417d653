"""The sync upload and its acknowledgement (issue 12, seed 002 "Sync Agent"; docs/SYNC.md).

The daemon sends the authority every journal record in chain order, not only the invoices: each
record signs its predecessor's hash, so the authority can check the chain record by record only if
none is left out. An upload is::

    {"format": "fiscal-sync-1", "device_id": "EMU-0A1B2C3D", "certificate": "<hex>",
     "records": [{"seq": 41, "record": "<hex body||signature>", "canonical": "<hex>"}, ...]}

``canonical`` is the invoice's canonical CBOR, whose SHA-256 the INVOICE record signs; it is left
out for other records, and for an invoice whose content the daemon does not hold (a quarantined
record, a store rebuilt after archiving): the record still counts, its totals are signed. Seqs
are consecutive, at most ``MAX_RECORDS`` per upload. The upload is idempotent: a record the
authority holds with the same bytes is acknowledged again, so a retry after a lost answer is
harmless. The answer::

    {"status": "ok", "device_id": ..., "acknowledged_at": "YYYY-MM-DDTHH:MM:SSZ",
     "acknowledged": [{"seq": 41, "hash": "<hex>", "fiscal_number": "EMU-0A1B2C3D-00000017"}, ...],
     "head": {"seq": 57, "hash": "<hex>"}}

Both sides import this module: the daemon builds with ``build`` and reads answers with
``read_ack``; the authority parses with ``parse`` (every field checked, the first bad one named).
"""

import binascii

from hostd.errors import UploadRefused

FORMAT = "fiscal-sync-1"
MAX_RECORDS = 128
MAX_BODY = 4 * 1024 * 1024
MAX_RECORD_HEX = 2 * 2048
MAX_CANONICAL_HEX = 2 * 65536


def build(device_id, certificate, rows):
    """The upload of ``rows`` [(seq, record bytes, canonical bytes or None)] in seq order."""
    records = []
    for seq, rec, canonical in rows:
        item = {"seq": seq, "record": bytes(rec).hex()}
        if canonical is not None:
            item["canonical"] = bytes(canonical).hex()
        records.append(item)
    return {"format": FORMAT, "device_id": device_id,
            "certificate": None if certificate is None else bytes(certificate).hex(), "records": records}


def _hex(value, field, limit):
    if not isinstance(value, str) or not value or len(value) > limit or len(value) % 2:
        raise UploadRefused("%s must be a non-empty even-length hex string of at most %d digits" % (field, limit),
                            field)
    try:
        return binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise UploadRefused("%s is not hex" % field, field)


def _count(value, field):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2 ** 53:
        raise UploadRefused("%s must be a whole number from 1" % field, field)
    return value


def parse(doc, device_id):
    """(certificate bytes or None, [(seq, record, canonical or None)]) of an upload posted for
    ``device_id``; UploadRefused naming the first bad field."""
    if not isinstance(doc, dict):
        raise UploadRefused("an upload is a JSON object", "body")
    unknown = sorted(set(doc) - {"format", "device_id", "certificate", "records"})
    if unknown:
        raise UploadRefused("unknown field %s" % unknown[0], unknown[0])
    if doc.get("format") != FORMAT:
        raise UploadRefused("format must be %r" % FORMAT, "format")
    if doc.get("device_id") != device_id:
        raise UploadRefused("device_id must be the device of the URL, %s" % device_id, "device_id")
    cert = doc.get("certificate")
    cert = None if cert is None else _hex(cert, "certificate", 1024)
    records = doc.get("records")
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_RECORDS:
        raise UploadRefused("records must be a list of 1..%d records" % MAX_RECORDS, "records")
    out = []
    for i, item in enumerate(records):
        where = "records[%d]" % i
        if not isinstance(item, dict) or not set(item) <= {"seq", "record", "canonical"}:
            raise UploadRefused("%s must be an object of seq, record and canonical" % where, where)
        seq = _count(item.get("seq"), where + ".seq")
        if out and seq != out[-1][0] + 1:
            raise UploadRefused("%s.seq is %d, expected %d: an upload's records are consecutive"
                                % (where, seq, out[-1][0] + 1), where + ".seq", seq=seq)
        rec = _hex(item.get("record"), where + ".record", MAX_RECORD_HEX)
        canonical = item.get("canonical")
        canonical = None if canonical is None else _hex(canonical, where + ".canonical", MAX_CANONICAL_HEX)
        out.append((seq, rec, canonical))
    return cert, out


def read_ack(doc, sent):
    """The (seq, hash bytes) acknowledged, checked against the seqs ``sent``: an answer that
    acknowledges something else is not taken as an acknowledgement (ValueError)."""
    if not isinstance(doc, dict) or doc.get("status") != "ok" or not isinstance(doc.get("acknowledged"), list):
        raise ValueError("not an acknowledgement")
    acked = []
    for item in doc["acknowledged"]:
        acked.append((item["seq"], binascii.unhexlify(item["hash"])))
    if [s for s, _ in acked] != list(sent):
        raise ValueError("the acknowledgement names other records than the ones sent")
    return acked, doc.get("acknowledged_at")
