"""Offline journal verifier: what a third party runs with only the public key and PROTOCOL.md.

Given the records in journal order (each ``body || signature``, as READ_JOURNAL and the audit
export deliver them) it checks, record by record, and stops at the first failure with a
VerifyError naming the record (1-based sequence number and 0-based index):

1. the body is canonical CBOR with the common keys (VERIFY_RECORD);
2. ``seq`` is exactly one more than the previous record's (VERIFY_COUNTER: a removed, inserted or
   reordered record shows here first);
3. ``prev`` equals SHA-256(previous body || previous signature), GENESIS for record 1
   (VERIFY_CHAIN);
4. the ECDSA P-256 signature over SHA-256(body) verifies with the device key (VERIFY_SIGNATURE);
5. the fiscal counter moves by one on invoice records and stays put otherwise (VERIFY_COUNTER);
6. time never goes back (VERIFY_TIME);
7. invoice records: the total is the sum of the group bases and taxes, and the running totals
   equal the previous running totals plus this invoice, credit notes negative (VERIFY_RECORD).

Signature checks dominate the cost; a host may pass a faster ``verify_sig`` (e.g. backed by
``cryptography``) with the same contract as :func:`protocol.p256.verify`.
"""

import hashlib

from protocol import invoice, p256, record
from protocol.errors import VerifyError


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)   # bool is an int in CPython only


def _fail(name, index, text):
    raise VerifyError(name, "record %d (index %d): %s" % (index + 1, index, text), index)


def _check_invoice(fields, cumulative, index):
    groups = fields.get(record.K_GROUPS)
    total = fields.get(record.K_TOTAL)
    itype = fields.get(record.K_INVOICE_TYPE)
    if not isinstance(groups, list) or not _is_int(total) or itype not in invoice.TYPES:
        _fail("VERIFY_RECORD", index, "invoice record lacks groups, total or a valid invoice type")
    for g in groups:
        if not (isinstance(g, list) and len(g) == 3 and isinstance(g[0], str)
                and _is_int(g[1]) and _is_int(g[2])):
            _fail("VERIFY_RECORD", index, "tax group entry %r is not [code, base, tax]" % (g,))
    if total != sum([g[1] + g[2] for g in groups]):
        _fail("VERIFY_RECORD", index, "total %d is not the sum of the tax groups" % total)
    expected = record.add_cumulative(cumulative, record.signed_groups(groups, itype, invoice.CREDIT_TYPES))
    if fields.get(record.K_CUMULATIVE) != expected:
        _fail("VERIFY_RECORD", index, "running totals do not follow from the previous record")
    return expected


def verify_records(records, public_key, verify_sig=None, progress=None):
    """Verify a whole journal; return a summary dict, or raise VerifyError at the first bad record.

    ``public_key`` is the 64-byte X||Y (or 65-byte 0x04-prefixed) device key. ``progress`` is
    called with the number of records checked so far, for progress bars on large exports.
    """
    point = p256.decode_point(public_key)
    check_sig = verify_sig or (lambda body, sig: p256.verify(point, hashlib.sha256(body).digest(), sig))
    prev_hash = record.genesis()
    counter, last_time, device = 0, 0, None
    cumulative = []
    invoices = 0
    for index in range(len(records)):
        fields, body, sig = record.decode(records[index], index)
        if fields[record.K_SEQ] != index + 1:
            _fail("VERIFY_COUNTER", index, "sequence number is %r, expected %d (a record is missing, added "
                  "or out of order)" % (fields[record.K_SEQ], index + 1))
        if fields[record.K_PREV] != prev_hash:
            _fail("VERIFY_CHAIN", index, "previous-hash does not match the record before it")
        if not check_sig(body, sig):
            _fail("VERIFY_SIGNATURE", index, "signature does not verify with this public key")
        if device is None:
            device = fields[record.K_DEVICE]
        elif fields[record.K_DEVICE] != device:
            _fail("VERIFY_RECORD", index, "device id changes from %s to %s" % (device, fields[record.K_DEVICE]))
        rtype = fields[record.K_TYPE]
        want = counter + 1 if rtype == record.INVOICE else counter
        if fields[record.K_COUNTER] != want:
            _fail("VERIFY_COUNTER", index, "fiscal counter is %r, expected %d" % (fields[record.K_COUNTER], want))
        if not _is_int(fields[record.K_TIME]) or fields[record.K_TIME] < last_time:
            _fail("VERIFY_TIME", index, "time goes back before %d" % last_time)
        if rtype == record.INVOICE:
            cumulative = _check_invoice(fields, cumulative, index)
            invoices += 1
        elif rtype not in record.TYPE_NAMES:
            _fail("VERIFY_RECORD", index, "unknown record type %r" % (rtype,))
        counter, last_time = want, fields[record.K_TIME]
        prev_hash = record.record_hash(body, sig)
        if progress is not None:
            progress(index + 1)
    return {"records": len(records), "invoices": invoices, "counter": counter, "device_id": device,
            "last_hash": prev_hash, "last_time": last_time, "cumulative": cumulative}
