"""Inclusion proofs: one receipt shown to belong to a signed daily closure, without the journal.

A Z CLOSURE record carries the RFC 6962 Merkle root over the record hashes of its period, records
``first..last`` of its range (PROTOCOL.md 7.10, protocol/merkle.py). The proof of an invoice
(``GET /api/v1/invoices/{fiscal_number}/proof``) is its record, the hash of the record before it
(the record's signature covers it, PROTOCOL.md 7.2), its leaf index ``seq - first`` in a tree of
``last - first + 1`` leaves, the audit path, and the closure record. ``verify_receipt`` is what
``fiscal verify --receipt --proof --closure`` runs:

1. the closure is a Z CLOSURE whose signature verifies with the device key over its own explicit
   prev (a closure verifies alone);
2. the receipt is an INVOICE record of the same device whose signature verifies over ``prev``;
3. its seq lies in the closure's range, and the path takes ``SHA-256(prev || record)`` to the
   closure's Merkle root.

Any flipped byte in the record, the path or the root fails one of these (VERIFY_PROOF,
VERIFY_SIGNATURE or VERIFY_CLOSURE).
"""

import json

from protocol import merkle, record
from protocol.errors import VerifyError
from hostd.books.keys import fast_verifier
from hostd.errors import VerificationFailed

PROOF_FORMAT = "fiscal-proof-1"


def build(seq, rec, prev, closure_row, hashes):
    """The proof document of record ``seq`` (``rec``, previous hash ``prev``) in the Z closure
    ``closure_row`` (store row), from ``hashes``: the record hashes of the closure's range in order."""
    first, last = closure_row["first_seq"], closure_row["last_seq"]
    if len(hashes) != last - first + 1:
        raise ValueError("the mirror holds %d of the %d record hashes of records %d..%d"
                         % (len(hashes), last - first + 1, first, last))
    fields = record.decode(rec)[0]
    device = fields[record.K_DEVICE]
    return {"format": PROOF_FORMAT, "fiscal_number": record.fiscal_number(device, fields[record.K_COUNTER]),
            "seq": seq, "record": bytes(rec).hex(), "prev": bytes(prev).hex(), "leaf_index": seq - first,
            "tree_size": last - first + 1, "path": [h.hex() for h in merkle.path(hashes, seq - first)],
            "closure": {"seq": closure_row["seq"], "kind": closure_row["kind"], "period": closure_row["period"],
                        "record": bytes(closure_row["record"]).hex(), "hash": bytes(closure_row["hash"]).hex()}}


def _refuse(reason, detail):
    exc = VerificationFailed(detail)
    exc.reason = reason
    return exc


def _decode(rec, what):
    try:
        return record.decode(rec)
    except VerifyError as exc:
        raise _refuse("VERIFY_RECORD", "%s is not a record: %s" % (what, exc.detail))


def verify_receipt(rec, proof, closure_rec, public_key):
    """Check one receipt record against a closure with ``proof`` (a proof document); return a
    summary, or raise VerificationFailed whose ``reason`` names the rule."""
    check = fast_verifier(public_key)
    cf, cbody, csig = _decode(closure_rec, "the closure")
    if cf[record.K_TYPE] != record.CLOSURE or cf[record.K_KIND] != "Z":
        raise _refuse("VERIFY_CLOSURE", "the closure file holds a %s record, not a Z closure"
                      % ("CLOSURE " + cf.get(record.K_KIND, "") if cf[record.K_TYPE] == record.CLOSURE else "non-closure"))
    if not check(record.signing_input(cf[record.K_PREV], cbody), csig):
        raise _refuse("VERIFY_SIGNATURE", "the closure's signature does not verify with the device key")
    fields, body, sig = _decode(rec, "the receipt")
    try:
        prev = bytes.fromhex(proof["prev"])
        path = [bytes.fromhex(h) for h in proof["path"]]
    except (KeyError, TypeError, ValueError):
        raise _refuse("VERIFY_PROOF", "the proof file lacks a hex prev and path")
    if fields[record.K_TYPE] != record.INVOICE:
        raise _refuse("VERIFY_RECORD", "the receipt is not an invoice record")
    if fields[record.K_DEVICE] != cf[record.K_DEVICE]:
        raise _refuse("VERIFY_RECORD", "the receipt is from device %s, the closure from %s"
                      % (fields[record.K_DEVICE], cf[record.K_DEVICE]))
    if not check(record.signing_input(prev, body), sig):
        raise _refuse("VERIFY_SIGNATURE", "the receipt's signature does not verify with the device key over the "
                      "proof's previous hash")
    first, last = cf[record.K_RANGE]
    seq = fields[record.K_SEQ]
    if not first <= seq <= last:
        raise _refuse("VERIFY_PROOF", "record %d is outside the closure's records %d..%d" % (seq, first, last))
    if not merkle.verify(record.record_hash(prev, rec), seq - first, last - first + 1, path, cf[record.K_MERKLE]):
        raise _refuse("VERIFY_PROOF", "the path does not lead from record %d to the closure's Merkle root" % seq)
    return {"fiscal_number": record.fiscal_number(fields[record.K_DEVICE], fields[record.K_COUNTER]),
            "seq": seq, "closure_period": cf[record.K_PERIOD], "closure_seq": cf[record.K_SEQ],
            "closure_hash": record.record_hash(cf[record.K_PREV], closure_rec).hex(),
            "merkle_root": bytes(cf[record.K_MERKLE]).hex(), "device_id": cf[record.K_DEVICE]}


def _json_or_none(data):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _hex_or_raw(data):
    text = data.strip()
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return data


def read_receipt(data):
    """The record bytes of a receipt file: the sealed answer of POST /invoices (or its payload),
    the record as hex, or the raw record."""
    doc = _json_or_none(data)
    if isinstance(doc, dict):
        doc = doc.get("payload", doc)
        try:
            return bytes.fromhex(doc["signed_record"]) + bytes.fromhex(doc["signature"])
        except (KeyError, TypeError, ValueError):
            raise _refuse("VERIFY_RECORD", "the receipt file is JSON without signed_record and signature")
    return _hex_or_raw(data)


def read_proof(data):
    """The proof document of a proof file (GET /invoices/{n}/proof answer, or its payload)."""
    doc = _json_or_none(data)
    if isinstance(doc, dict) and "payload" in doc:
        doc = doc["payload"]
    if not isinstance(doc, dict) or doc.get("format") != PROOF_FORMAT:
        raise _refuse("VERIFY_PROOF", "the proof file is not a %s document" % PROOF_FORMAT)
    return doc


def read_closure(data):
    """(closure record bytes, the bundle's device dict or None) of a closure file: a bundle
    (GET /reports/{id}/download), the record as hex, or the raw record."""
    doc = _json_or_none(data)
    if isinstance(doc, dict):
        try:
            return bytes.fromhex(doc["closure"]["record"]), doc.get("device")
        except (KeyError, TypeError, ValueError):
            raise _refuse("VERIFY_CLOSURE", "the closure file is JSON without closure.record")
    return _hex_or_raw(data), None
