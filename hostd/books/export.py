"""The audit export ("fiscal-journal-export/2") and its offline verification (PROTOCOL.md section 11).

One UTF-8 JSON document an auditor checks with only this file, the device's public key (or the
authority that certified it) and PROTOCOL.md::

    {"format": "fiscal-journal-export/2", "device_id", "public_key": hex X||Y,
     "certificate": hex or null, "exported_at": "YYYY-MM-DDTHH:MM:SSZ", "from_seq",
     "records": [hex(body || signature), ...] oldest first, "checkpoints": [seq, ...],
     "head": {"statement": hex, "signature": hex}}

``records`` start at seq 1 or at a CHECKPOINT (``from_seq``) and must end exactly at the
device-signed ``head`` (HEAD, PROTOCOL.md 4.15): records cut off the end, or an older head, are
detected offline, and with ``challenge`` the head must have been signed over the auditor's own
challenge. Trust your own copy of the public key (``--pubkey``) or the authority (``--authority``),
not the file's key alone; a file whose key or certificate disagrees with them is refused.
Every refusal is an ExportError naming the first bad record and, in ``reason``, the VERIFY_*
code of PROTOCOL.md section 5.
"""

import json
import re

from hostd.books import signatures
from hostd.intake import fastcbor
from hostd.books.keys import fast_verifier, verify_certificate
from hostd.errors import VerificationFailed
from protocol import cert, p256, record, timefmt, verify
from protocol.errors import InvoiceError, VerifyError

FORMAT = "fiscal-journal-export/2"
FIELDS = ("format", "device_id", "public_key", "certificate", "exported_at", "from_seq", "records",
          "checkpoints", "head")
_HEX_DIGITS = re.compile(r"\A[0-9a-fA-F]*\Z")   # with an even length: whole bytes
_WHERE = re.compile(r"\Arecord \d+ \(index \d+\):? ?")


class ExportError(VerificationFailed):
    """VerificationFailed that also names the bad record (``index``, 0-based, None if none) and
    the rule (``reason``, a VERIFY_* name)."""

    def __init__(self, detail, index=None, field=None, reason="VERIFY_EXPORT"):
        VerificationFailed.__init__(self, detail, field)
        self.index = index
        self.reason = reason


def build_export(records, info, head, exported_at):
    """The export document (JSON-ready) of ``records`` (oldest first), the INFO answer ``info``
    and the HEAD answer ``head``; ``exported_at`` is epoch seconds or text. Take HEAD right after
    the records, nothing sealed in between."""
    if not isinstance(exported_at, str):
        exported_at = timefmt.format_time(exported_at)
    kinds = [(record.decode(r)[0][record.K_SEQ], record.type_of(r)) for r in records]
    doc = {"format": FORMAT, "device_id": info["device_id"], "public_key": bytes(info["public_key"]).hex(),
           "certificate": bytes(info["certificate"]).hex() if info.get("certificate") else None,
           "exported_at": exported_at, "from_seq": kinds[0][0] if kinds else info["first_live"],
           "records": [bytes(r).hex() for r in records],
           "checkpoints": [seq for seq, kind in kinds if kind == record.CHECKPOINT],
           "head": {"statement": bytes(head["statement"]).hex(), "signature": bytes(head["signature"]).hex()}}
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
    if not isinstance(value, str) or len(value) % 2 or not _HEX_DIGITS.match(value):
        where = field if index is None else "%s (record %d)" % (field, index + 1)
        raise ExportError("%s is not hex text" % where, index, field)
    raw = bytes.fromhex(value)
    if length is not None and len(raw) != length:
        raise ExportError("%s must be %d bytes, got %d" % (field, length, len(raw)), field=field)
    return raw


def _records_of(values):
    """The records' bytes: all of them checked and converted in one pass when they are all even
    hex text (the usual case), else one by one, so the first bad one is named."""
    if all([type(v) is str and not len(v) % 2 for v in values]):
        joined = "".join(values)
        if _HEX_DIGITS.match(joined):
            raw = bytes.fromhex(joined)
            out, at = [], 0
            for v in values:
                n = len(v) // 2
                out.append(raw[at:at + n])
                at += n
            return out
    return [_bytes_of(value, "records[%d]" % i, None, i) for i, value in enumerate(values)]


def _count(value, field):
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
    if not isinstance(doc["records"], list):
        raise ExportError("records must be a list", field="records")
    if not isinstance(doc["checkpoints"], list):
        raise ExportError("checkpoints must be a list", field="checkpoints")
    head = doc["head"]
    if not isinstance(head, dict) or sorted(head) != ["signature", "statement"]:
        raise ExportError("head must be an object with exactly statement and signature", field="head")
    records = _records_of(doc["records"])
    return {"device_id": doc["device_id"], "public_key": _bytes_of(doc["public_key"], "public_key", 64),
            "certificate": None if doc["certificate"] is None else _bytes_of(doc["certificate"], "certificate"),
            "from_seq": _count(doc["from_seq"], "from_seq"), "records": records,
            "checkpoints": [_count(c, "checkpoints[%d]" % i) for i, c in enumerate(doc["checkpoints"])],
            "statement": _bytes_of(head["statement"], "head.statement"),
            "signature": _bytes_of(head["signature"], "head.signature", 64)}


def _seq_of(rec):
    try:
        return record.decode(rec)[0][record.K_SEQ]
    except VerifyError:   # a damaged record further on claims no number
        return None


def _signed_after(records, k, index, check):
    """Whether records[index] is signed over the hash of records[k - 1] (the anchor for k = 0):
    a genuine record k from another history of the journal. Records before ``index`` verified."""
    prev = record.genesis() if _seq_of(records[0]) == 1 else record.decode(records[0])[0].get(record.K_PREV)
    for rec in records[:k]:
        prev = record.record_hash(prev, rec)
    body = records[index][:-record.SIG_LEN]
    return prev is not None and check(record.signing_input(prev, body), records[index][-record.SIG_LEN:])


def _explain(exc, records, key_note, check):
    """A VerifyError from protocol.verify as one sentence naming the first bad record.

    The previous hash is signed, not stored: a record whose signature fails over the chain was
    altered or belongs to another chain. Gaps and reorders of genuine records show in the seq
    numbers first (protocol.verify checks seq before the signature)."""
    index = exc.index
    n = index + 1
    rest = _WHERE.sub("", exc.detail)
    if exc.name == "VERIFY_RECORD":
        return "record %d is damaged: %s" % (n, "it " + rest if rest.startswith("is ") else rest)
    if exc.name == "VERIFY_SIGNATURE":
        if "high s" in rest:
            return "record %d has a high-s signature: not the device's canonical signature" % n
        if index == 0:
            return "signature of record 1 does not verify: wrong public key, or record 1 was altered" + key_note
        return ("record %d was altered or does not chain to record %d (its signature does not verify over "
                "the previous record's hash)" % (n, n - 1))
    if exc.name == "VERIFY_CHAIN" and index == 0:
        return "the export starts at record %s, which is neither record 1 nor a checkpoint" % _seq_of(records[0])
    fields = record.decode(records[index], index)[0]
    found = fields.get(record.K_SEQ)
    first = _seq_of(records[0])
    if isinstance(first, bool) or not isinstance(first, int) or first < 1:
        first = 1                      # the first record's own seq is what was damaged
    want = first + index
    if exc.name == "VERIFY_COUNTER" and isinstance(found, int) and not isinstance(found, bool) and found != want:
        if found > want:
            later = [i for i in range(index + 1, len(records)) if _seq_of(records[i]) == want]
            if later:
                return ("records out of order at %d: position %d holds record %d, record %d is at position %d"
                        % (want, n, found, want, later[0] + 1))
            return "record %d is missing (the file goes on with record %d)" % (want, found)
        if found < want and 0 <= found - first < index and records[found - first] == records[index]:
            return "records out of order at %d: record %d appears again (duplicated)" % (want, found)
        if found < first or not _signed_after(records, found - first, index, check):
            return ("record %d was altered or comes from another copy of the journal (it reads as record %d and "
                    "its signature does not verify over this file's chain)" % (want, found))
        return ("records out of order at %d: position %d holds a second, different record %d (from another copy "
                "of the journal)" % (want, n, found))
    return "record %d is invalid: %s" % (want, rest)


def verify_export(doc, public_key=None, progress=None, authority=None, challenge=None, workers=0):
    """Verify an export document; return a JSON-ready summary or raise ExportError.

    ``public_key`` (64 or 65 bytes), when given, must equal the file's key. ``authority`` (64
    bytes), when given, must have certified that key and the device id (PROTOCOL.md 4.14).
    ``challenge`` (bytes), when given, must be the one the head was signed over. ``progress`` is
    called with the number of records checked so far. ``workers`` (0 or 1; ``fiscal verify``
    passes hostd.books.signatures.workers()): with 1, an export of PARALLEL_MIN records or more
    has its signatures checked in a second process while this one walks the records; the answer
    is the same either way (hostd/books/signatures.py says why).
    """
    parsed = _parse(doc)
    records = parsed["records"]
    key = parsed["public_key"] if public_key is None else bytes(public_key)
    try:
        check = fast_verifier(key)
        key = p256.encode_point(*p256.decode_point(key))
    except VerifyError as exc:
        raise ExportError("public key: %s" % exc.detail, field="public_key", reason="VERIFY_KEY")
    if key != parsed["public_key"]:
        raise ExportError("the export's public key differs from the key given to check it", field="public_key",
                          reason="VERIFY_KEY")
    cert_note = _check_certificate(parsed, key, authority)
    summary = None
    if workers and len(records) >= signatures.PARALLEL_MIN:
        summary = _walk_beside(records, key, check, progress)
    if summary is None:   # sequential: the reference walk, and the one that names a refusal
        try:
            summary = verify.verify_records(records, key, check, progress, decode=fastcbor.decode_record)
        except VerifyError as exc:
            raise ExportError(_explain(exc, records, "", check), exc.index, reason=exc.name)
    if records and summary["first_seq"] != parsed["from_seq"]:
        raise ExportError("from_seq is %d, the first record is %d" % (parsed["from_seq"], summary["first_seq"]),
                          0, "from_seq")
    if parsed["checkpoints"] != summary["checkpoints"]:
        raise ExportError("checkpoints lists %r, the records hold checkpoints %r"
                          % (parsed["checkpoints"], summary["checkpoints"]), field="checkpoints")
    if records and summary["device_id"] != parsed["device_id"]:
        raise ExportError("the records are from device %s, the file says %s" % (summary["device_id"], parsed["device_id"]),
                          field="device_id")
    head = _check_head(parsed, summary, key, check, challenge)
    first = 0
    for rec in records:   # records before the clock was first set carry time 0
        first = first or record.decode(rec)[0][record.K_TIME]
    return {"format": FORMAT, "device_id": parsed["device_id"], "records": len(records),
            "invoices": summary["invoices"], "counter": summary["counter"], "last_hash": summary["last_hash"].hex(),
            "first_seq": summary["first_seq"], "last_seq": summary["last_seq"],
            "first_time": timefmt.format_time(first) if first else None,
            "last_time": timefmt.format_time(summary["last_time"]) if summary["last_time"] else None,
            "exported_at": doc["exported_at"], "public_key": key.hex(),
            "key_source": "file" if public_key is None else "given", "certificate": cert_note,
            "head_time": timefmt.format_time(head[record.H_TIME]) if head[record.H_TIME] else None,
            "challenge": head[record.H_CHALLENGE].hex(), "checkpoints": summary["checkpoints"],
            "totals": summary["totals"]}


def _walk_beside(records, key, check, progress):
    """The walk's summary with the signatures checked in a worker process, or None when a record
    or signature fails, or the worker cannot run: the sequential walk then gives the answer,
    naming the first bad record exactly as it always does."""
    try:
        with signatures.Deferred(key) as deferred:
            # progress counts records both walked and signature-checked
            walked = None if progress is None else (lambda n: progress(min(n, deferred.checked())))
            summary = verify.verify_records(records, key, deferred.check, walked, decode=fastcbor.decode_record)
            return summary if deferred.all_good(check, progress) else None
    except Exception:
        # A refusal (VerifyError), no worker here (no fork or forkserver, no working semaphores,
        # a worker that died: BrokenProcessPool), or anything else on records the walk went on
        # past an unchecked signature: the sequential walk answers, naming the first bad record
        # or raising what is really wrong. Nothing is decided here.
        return None


def _check_head(parsed, summary, key, check, challenge):
    """The signed head verifies and the records end exactly at it: seq, counter and hash."""
    try:
        head = verify.verify_head(parsed["statement"], parsed["signature"], key, check)
    except VerifyError as exc:
        raise ExportError("head: %s" % exc.detail, field="head", reason="VERIFY_HEAD")
    last = len(parsed["records"]) - 1 if parsed["records"] else None
    if head[record.H_DEVICE] != parsed["device_id"]:
        raise ExportError("the head is signed by device %s, the file says %s" % (head[record.H_DEVICE], parsed["device_id"]),
                          field="head", reason="VERIFY_HEAD")
    if head[record.H_SEQ] != summary["last_seq"]:
        raise ExportError("the records end at record %d, the device-signed head is at record %d%s"
                          % (summary["last_seq"], head[record.H_SEQ],
                             " (records cut off the end)" if head[record.H_SEQ] > summary["last_seq"]
                             else " (an older head)"), last, "head", "VERIFY_HEAD")
    if head[record.H_COUNTER] != summary["counter"] or head[record.H_HASH] != summary["last_hash"]:
        raise ExportError("record %d is not the record the device-signed head names (hash or fiscal counter "
                          "differ)" % summary["last_seq"], last, "head", "VERIFY_HEAD")
    if challenge is not None and head[record.H_CHALLENGE] != bytes(challenge):
        raise ExportError("the head was signed over challenge %s, not %s"
                          % (head[record.H_CHALLENGE].hex() or "(none)", bytes(challenge).hex()),
                          field="head", reason="VERIFY_HEAD")
    return head


def _check_certificate(parsed, key, authority):
    """One line on the certificate for the summary; ExportError if it names another key or
    device, or if ``authority`` does not vouch for it."""
    data = parsed["certificate"]
    if data is None:
        if authority is not None:
            raise ExportError("the export carries no device certificate, so the authority cannot vouch for the key",
                              field="certificate", reason="VERIFY_KEY")
        return None
    if authority is not None:
        fields = verify_certificate(data, bytes(authority))
    else:
        try:
            fields = cert.decode(data)
        except VerifyError as exc:
            raise ExportError("certificate: %s" % exc.detail, field="certificate", reason="VERIFY_KEY")
    if fields[cert.C_PUBLIC_KEY] != key:
        raise ExportError("the certificate is for another public key than the one the records verify with",
                          field="certificate", reason="VERIFY_KEY")
    if fields[cert.C_DEVICE] != parsed["device_id"]:
        raise ExportError("the certificate names device %s, the export %s" % (fields[cert.C_DEVICE], parsed["device_id"]),
                          field="certificate", reason="VERIFY_KEY")
    if authority is None:
        return "present, names this key and device; issuer not checked (pass --authority)"
    return "verified: issued to %s by %s at %s" % (fields[cert.C_DEVICE], fields[cert.C_AUTHORITY],
                                                  timefmt.format_time(fields[cert.C_ISSUED]))
