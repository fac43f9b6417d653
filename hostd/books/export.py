"""The audit export ("fiscal-journal-export/1") and its offline verification.

One UTF-8 JSON document an auditor checks with only this file, the device's public key and
PROTOCOL.md: ``{"format", "device_id", "public_key": hex X||Y, "certificate": hex of the device
certificate or null (protocol/cert.py), "exported_at": "YYYY-MM-DDTHH:MM:SSZ", "device_counter",
"device_seq", "last_hash": hex, "records": [hex(body || signature), ...] in journal order}``.

The hash chain shows a record altered, removed, added or moved before the last one, not records
cut off the end: ``device_counter``, ``device_seq`` and ``last_hash`` (INFO at export time) catch
those. They are not signed, so they only help when the file is handed over intact or INFO was
taken independently. Trust your own copy of the public key (``public_key=``, ``--pubkey``), or
the authority that certified the key (``authority=``, ``--authority``), not the file's key alone:
whoever forged the records could also replace that key.
"""

import json
import re

from hostd.books.keys import fast_verifier, verify_certificate
from hostd.errors import VerificationFailed
from protocol import cert, p256, record, timefmt, verify
from protocol.errors import InvoiceError, VerifyError

FORMAT = "fiscal-journal-export/1"
FIELDS = ("format", "device_id", "public_key", "certificate", "exported_at", "device_counter",
          "device_seq", "last_hash", "records")
_HEX = re.compile(r"\A(?:[0-9a-fA-F]{2})*\Z")
_WHERE = re.compile(r"\Arecord \d+ \(index \d+\):? ?")


class ExportError(VerificationFailed):
    """VerificationFailed that also names the bad record: ``index`` is 0-based, None if none."""

    def __init__(self, detail, index=None, field=None):
        VerificationFailed.__init__(self, detail, field)
        self.index = index


def build_export(records, info, exported_at):
    """The export document (JSON-ready) of ``records`` and the INFO answer ``info``; ``exported_at`` is
    epoch seconds or text. Read INFO right after the records, nothing sealed in between."""
    if not isinstance(exported_at, str):
        exported_at = timefmt.format_time(exported_at)
    doc = {"format": FORMAT, "device_id": info["device_id"], "public_key": bytes(info["public_key"]).hex(),
           "certificate": bytes(info["certificate"]).hex() if info.get("certificate") else None,
           "exported_at": exported_at, "device_counter": info["counter"],
           "device_seq": info["seq"], "last_hash": bytes(info["last_hash"]).hex(),
           "records": [bytes(r).hex() for r in records]}
    _parse(doc)
    return doc


def dump_export(doc):
    """Deterministic bytes of ``doc``: sorted keys, no whitespace, ASCII (hence UTF-8)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ExportError("export is not valid: field %r appears twice" % key, field=key)
        seen[key] = value
    return seen


def _no_constants(name):   # NaN, Infinity: Python accepts them, JSON does not
    raise ExportError("export is not valid JSON: %s is not allowed" % name)


def load_export(data):
    """Parse and check the shape of an export (bytes); return the document, or raise naming the field."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except UnicodeError as exc:
        raise ExportError("export is not UTF-8 text: %s" % exc)
    except (ValueError, RecursionError) as exc:   # JSONDecodeError is a ValueError
        raise ExportError("export is not valid JSON: %s" % exc)
    _parse(doc)
    return doc


def _bytes_of(value, field, length=None, index=None):
    if not isinstance(value, str) or not _HEX.match(value):
        where = field if index is None else "%s (record %d)" % (field, index + 1)
        raise ExportError("%s is not hex text" % where, index, field)
    raw = bytes.fromhex(value)
    if length is not None and len(raw) != length:
        raise ExportError("%s must be %d bytes, got %d" % (field, length, len(raw)), field=field)
    return raw


def _count(doc, field):
    value = doc[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExportError("%s must be a non-negative integer" % field, field=field)
    return value


def _parse(doc):
    """Check every field of ``doc``; return a dict of the decoded values (bytes, ints)."""
    if not isinstance(doc, dict):
        raise ExportError("export is not a JSON object")
    if doc.get("format") != FORMAT:
        raise ExportError("format is %r, expected %r" % (doc.get("format"), FORMAT), field="format")
    for field in [f for f in FIELDS if f not in doc] + sorted([f for f in doc if f not in FIELDS]):
        raise ExportError(("export lacks the field %s" if field in FIELDS else "export has an unknown field %s")
                          % field, field=field)
    if not isinstance(doc["device_id"], str) or not doc["device_id"]:
        raise ExportError("device_id must be a non-empty string", field="device_id")
    try:
        timefmt.parse_time(doc["exported_at"], "exported_at")
    except InvoiceError as exc:
        raise ExportError(exc.detail, field="exported_at")
    cert = doc["certificate"]
    if not isinstance(doc["records"], list):
        raise ExportError("records must be a list", field="records")
    records = [_bytes_of(value, "records[%d]" % i, None, i) for i, value in enumerate(doc["records"])]
    return {"device_id": doc["device_id"], "public_key": _bytes_of(doc["public_key"], "public_key", 64),
            "certificate": None if cert is None else _bytes_of(cert, "certificate"),
            "counter": _count(doc, "device_counter"), "seq": _count(doc, "device_seq"),
            "last_hash": _bytes_of(doc["last_hash"], "last_hash", 32), "records": records}


def _seq_of(rec):
    try:
        return record.decode(rec)[0][record.K_SEQ]
    except VerifyError:   # a damaged record further on claims no number
        return None


def _explain(exc, records, check, key_note):
    """A VerifyError from protocol.verify as one sentence naming the first bad record.

    protocol.verify checks seq and prev before the signature: a record whose own signature fails
    is reported as altered, a gap or reorder of genuine records from the seq numbers around it."""
    index = exc.index
    n = index + 1
    rest = _WHERE.sub("", exc.detail)
    if exc.name == "VERIFY_RECORD":
        return "record %d is damaged: %s" % (n, "it " + rest if rest.startswith("is ") else rest)
    fields, body, sig = record.decode(records[index], index)
    if exc.name in ("VERIFY_SIGNATURE", "VERIFY_CHAIN", "VERIFY_COUNTER") and not check(body, sig):
        if index == 0:
            return "signature of record 1 does not verify: wrong public key, or record 1 was altered" + key_note
        return "record %d was altered (signature does not verify)" % n
    if exc.name == "VERIFY_CHAIN":   # record 1: only if a device started a journal twice
        return ("record %d does not chain to record %d (altered or reordered)" % (n, n - 1) if index else
                "record 1 does not start the chain (its previous-hash is not GENESIS)")
    found = fields[record.K_SEQ]
    if exc.name == "VERIFY_COUNTER" and isinstance(found, int) and not isinstance(found, bool) and found != n:
        if found > n:
            later = [i for i in range(index + 1, len(records)) if _seq_of(records[i]) == n]
            if later:
                return ("records out of order at %d: position %d holds record %d, record %d is at position %d"
                        % (n, n, found, n, later[0] + 1))
            return "record %d is missing (the file goes on with record %d)" % (n, found)
        if 0 < found < n and records[found - 1] == records[index]:
            return "records out of order at %d: record %d appears again (duplicated)" % (n, found)
        return ("records out of order at %d: position %d holds a second, different record %d (from another copy "
                "of the journal)" % (n, n, found))
    return "record %d: %s" % (n, rest)


def verify_export(doc, public_key=None, progress=None, authority=None):
    """Verify an export document; return a JSON-ready summary or raise ExportError (a VerificationFailed).

    ``public_key`` (64 or 65 bytes), when given, is used instead of the file's key. ``authority``
    (64 bytes), when given, must have certified the key used and the device id (PROTOCOL.md 4.14).
    ``progress`` is called with the number of records checked so far.
    """
    parsed = _parse(doc)
    records = parsed["records"]
    key = parsed["public_key"] if public_key is None else bytes(public_key)
    try:
        check = fast_verifier(key)
    except VerifyError as exc:
        raise ExportError("public key: %s" % exc.detail, field="public_key")
    key = p256.encode_point(*p256.decode_point(key))
    matches = key == parsed["public_key"]
    note = "" if matches else " (the given key differs from the key in the file)"
    try:
        summary = verify.verify_records(records, key, check, progress)
    except VerifyError as exc:
        raise ExportError(_explain(exc, records, check, note), exc.index)
    m, n = len(records), parsed["seq"]
    if m < n:
        raise ExportError("records removed from the end: the device reported %d records, the file has %d "
                          "(record %d onward is missing)" % (n, m, m + 1), m)
    if m > n:
        raise ExportError("the file has %d records, more than the %d the device reported" % (m, n), n)
    last = m - 1 if m else None
    if summary["counter"] != parsed["counter"]:
        raise ExportError("fiscal counter of the last record is %d, the device reported %d"
                          % (summary["counter"], parsed["counter"]), last)
    if summary["last_hash"] != parsed["last_hash"]:
        raise ExportError("hash of record %d does not match the last hash the device reported" % m, last)
    if m and summary["device_id"] != parsed["device_id"]:
        raise ExportError("the records are from device %s, the file says %s" % (summary["device_id"], parsed["device_id"]),
                          field="device_id")
    cert_note = _check_certificate(parsed, key, authority)
    first = 0
    for rec in records:   # records before the clock was first set carry time 0
        first = first or record.decode(rec)[0][record.K_TIME]
    return {"format": FORMAT, "device_id": parsed["device_id"], "records": m, "invoices": summary["invoices"],
            "counter": summary["counter"], "last_hash": summary["last_hash"].hex(),
            "first_time": timefmt.format_time(first) if first else None,
            "last_time": timefmt.format_time(summary["last_time"]) if summary["last_time"] else None,
            "exported_at": doc["exported_at"], "public_key": key.hex(),
            "key_source": "file" if public_key is None else "given", "file_key_matches": matches,
            "certificate": cert_note,
            "cumulative": summary["cumulative"]}


def _check_certificate(parsed, key, authority):
    """One line on the certificate for the summary; ExportError if ``authority`` does not vouch."""
    data = parsed["certificate"]
    if authority is None:
        return None if data is None else "present, not checked (pass --authority)"
    if data is None:
        raise ExportError("the export carries no device certificate, so the authority cannot vouch for the key",
                          field="certificate")
    fields = verify_certificate(data, bytes(authority))
    if fields[cert.C_PUBLIC_KEY] != key:
        raise ExportError("the certificate is for another public key than the one the records verify with",
                          field="certificate")
    if fields[cert.C_DEVICE] != parsed["device_id"]:
        raise ExportError("the certificate names device %s, the export %s" % (fields[cert.C_DEVICE], parsed["device_id"]),
                          field="certificate")
    return "verified: issued to %s by %s at %s" % (fields[cert.C_DEVICE], fields[cert.C_AUTHORITY],
                                                  timefmt.format_time(fields[cert.C_ISSUED]))
