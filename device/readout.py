"""The messages that only read the device: INFO, PING, READ_JOURNAL and HEAD (PROTOCOL.md 4.3, 4.4,
4.11, 4.15).

Handled outside device/core.py so a board keeps their code in RAM only while one of them runs
(device/core.py ``LAZY``; the core drops this module after the answer). INFO and HEAD read the
state the core keeps; READ_JOURNAL reads records from flash through device/journal.py.
"""

from protocol import invoice, record
from protocol.errors import JournalError, MessageError
from protocol.frames import MAX_PAYLOAD
from device.core import MAX_PING, PROTOCOL_VERSION, RESERVE


def on_info(core, fields):
    j = core.journal
    return {"device_id": core.device_id, "firmware": core.firmware, "protocol": PROTOCOL_VERSION,
            "public_key": core.signer.public_key() if core.signer else b"", "counter": core.counter,
            "seq": j.last_seq, "last_hash": j.head_hash, "clock": core.clock.now(),
            "pending": len(core.nonces.pending), "journal_used": j.used(), "journal_size": j.capacity(),
            "max_pending": core.nonces.max_pending, "nonce_ttl": core.nonces.ttl,
            "max_payload": MAX_PAYLOAD, "max_invoice": invoice.MAX_INVOICE, "last_time": core.last_time,
            "fault": core.fault, "certificate": core.certificate, "first_live": j.first_live,
            "archived_seq": j.archived[0] if j.archived else 0, "fill_ppm": core._fill(),
            "invoice_room": j.room(RESERVE[record.INVOICE]),
            "reserve": RESERVE[record.INVOICE] * j.ring.sector,
            "profile_id": core.profile_id, "profile_hash": core.profile_hash or b""}


def on_ping(core, fields):
    if len(fields["data"]) > MAX_PING:
        raise MessageError("MESSAGE_FIELD", "PING data is limited to %d bytes" % MAX_PING)
    return {"data": fields["data"]}


def on_read_journal(core, fields):
    first, count = fields["first"], fields["count"]
    j = core.journal
    if first < j.first_live:
        raise JournalError("RANGE_INVALID", "records before %d were archived and erased: first_live is %d"
                           % (j.first_live, j.first_live))
    if first > j.last_seq + 1 or count < 1:
        raise JournalError("RANGE_INVALID", "live records are %d..%d; asked for %d (+%d)"
                           % (j.first_live, j.last_seq, first, count))
    out, size, nxt = [], 0, first
    for seq, payload in j.records(first):
        if len(out) == count or size + len(payload) > MAX_PAYLOAD - 64:
            break
        out.append(payload)
        size += len(payload) + 3
        nxt = seq + 1
    return {"records": out, "next": nxt, "last": j.last_seq, "first_live": j.first_live}


def on_head(core, fields):
    challenge = fields["challenge"]
    if len(challenge) > record.MAX_CHALLENGE:
        raise MessageError("MESSAGE_FIELD", "a HEAD challenge is 0..%d bytes" % record.MAX_CHALLENGE)
    statement = record.head_statement(core.device_id, core.journal.last_seq, core.counter,
                                      core.journal.head_hash, core._time_or_last(), challenge)
    return {"statement": statement, "signature": core.signer.sign(record.HEAD_DOMAIN + statement)}
