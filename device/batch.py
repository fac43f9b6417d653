"""SEAL_BATCH on the device (PROTOCOL.md 4.24): K invoices checked, signed and journalled, one sync.

Imported by device/core.py only when a SEAL_BATCH arrives (a board's heap). The batch document
(protocol/batch.py) is uploaded in chunks like a SEAL; when it is complete, each entry goes
through the same steps as a SEAL (device/sealing.py): the invoice checks, a request id sealed
before answers its record (``replayed``, nothing written), one pending under a nonce has that
nonce consumed, then the clock, the time window, the room and the rates, and one INVOICE record.
An entry that is refused gets its own error code and the others go on; a credit type is refused
(BATCH_CREDIT: it needs EVIDENCE first, so it is sealed alone). The records of all entries are
programmed in entry order with the journal's sync deferred, then the flash syncs once, before
the answer: a power cut anywhere in the batch leaves a prefix of it sealed, and each request
finds out through STATUS by request id, or by sending the batch (or its SEAL) again.

The answer carries, besides one result per entry, the records the batch wrote from ``first`` to
``last`` as far as they fit in one frame, and ``prev``, the hash of the record before ``first``:
with them the host derives each sealed result (PROTOCOL.md 7.6); it reads records the frame had
no room for with READ_JOURNAL.
"""

import hashlib

from protocol import batch, cbor, invoice, record
from protocol.errors import FiscalError, MessageError, NonceError
from protocol.frames import MAX_PAYLOAD

NAME = "SEAL_BATCH"


def on_seal_batch(core, fields):
    got = _receive(core, fields)
    if got is None:
        return {"received": len(core.upload[3])}
    total, items = got
    profile = core._the_profile()
    j = core.journal
    first, prev = j.last_seq + 1, j.head_hash
    results = []
    j.deferred = True
    try:
        for rid, canonical in items:
            try:
                results.append(_item(core, rid, canonical, profile))
            except FiscalError as exc:
                results.append(batch.refused(exc))
    finally:
        j.deferred = False
    j.sync()
    return _answer(core, total, results, first, prev)


def _receive(core, fields):
    """Take one chunk; (total, entries) once the document is complete, else None."""
    total, offset, data = fields["total"], fields["offset"], fields["data"]
    if total < 1 or total > batch.MAX_BATCH:
        raise MessageError("BATCH_MALFORMED", "batch total %d; 1 to %d bytes" % (total, batch.MAX_BATCH))
    document = core._chunk(NAME, total, None, offset, data, core.upload)
    if document is None:
        return None
    return total, batch.decode(document)


def _item(core, rid, canonical, profile):
    summary = invoice.decode(canonical, profile)[1]
    if summary["credit"] is not None:
        raise MessageError("BATCH_CREDIT", "a %s needs EVIDENCE first: SEAL it alone" % summary["type"])
    summary["window"] = profile["window"]
    digest = hashlib.sha256(canonical).digest()
    j = core.journal
    seq = j.find_request(rid)
    if seq is not None:
        fields = record.decode(j.read(seq))[0]
        if fields[record.K_INVOICE_HASH] != digest:
            raise NonceError("REQUEST_ID_REUSED", "request id sealed another invoice as %s"
                             % record.fiscal_number(fields[record.K_DEVICE], fields[record.K_COUNTER]))
        return [0, seq, True]
    nonce = None
    for n in sorted(core.nonces.pending):
        entry = core.nonces.pending[n]
        if entry["rid"] == rid:
            if entry["hash"] != digest:
                raise NonceError("REQUEST_ID_REUSED", "request id is pending with another invoice")
            nonce = n
            break
    now, _, _ = core._admit(rid, digest, summary, nonce)
    fields = core._append(record.INVOICE, core._invoice_fields(rid, digest, summary), now)[0]
    seq = fields[record.K_SEQ]
    if nonce is not None:
        core.nonces.mark_committed(nonce, seq)
    return [0, seq, False]


def _answer(core, total, results, first, prev):
    """The response fields: every result, and the batch's records as far as one frame holds them."""
    j = core.journal
    last = j.last_seq
    answer = {"received": total, "results": results, "first": first, "prev": prev, "records": [], "last": last}
    # the encoded answer without records, plus the records list head (3 bytes at most), plus the
    # message id and status keys the envelope adds (4 bytes)
    room = MAX_PAYLOAD - len(cbor.encode(answer)) - 8
    records = []
    if first <= last:
        for _, payload in j.records(first):
            need = len(payload) + (3 if len(payload) >= 256 else 2)
            if need > room:
                break
            records.append(payload)
            room -= need
    answer["records"] = records
    return answer
