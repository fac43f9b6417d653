"""Closures: CLOSE (Z from the journal, M from Zs, Y from Ms) and X (PROTOCOL.md 4.22-4.23, 7.10).

A **Z** covers every record since the previous Z. The device streams those records from flash once
(ARCHIVED never erases them, device/archive.py): the record hashes into an RFC 6962 root with an
O(log n) stack (protocol/merkle.py), the invoices into the figures (protocol/closure.py), and signs
one CLOSURE record with an explicit prev, chained to the previous Z. **M** and **Y** are signed from
the closures below them, which the host sends back in chunks: the device checks each one's own
signature (explicit prev: a record verifies alone; one pure-Python ECDSA verification each, seconds
on a board), that they continue the chain from where the previous M (or Y) ended, that they lie in
the period, and that they end at the device's newest Z (or M) unless a closure of a later period
follows as terminator; it sums them and signs the M (or Y). **X** is a Z that is not written: the
open period's figures, computed the same way, unsigned.

Every refusal comes before anything is written. A CLOSURE may take the last erased sector, but
only with room left for the checkpoint after it (JOURNAL_FULL otherwise), so a full device can
always close and then archive. The chunk state of an M or Y lives in RAM (``core.closing``) and is
lost at power-up. Imported only by CLOSE and X, to spare a board's heap.
"""

import hashlib

from protocol import cbor, closure, merkle, p256, record, timefmt
from protocol.errors import CloseError, JournalError, VerifyError
from device import books
from device.ring import stored_size

# core.closing while an M or Y is received: [kind, period, received, figures, stream, expect, end,
# first seq, last seq, terminated]
S_KIND, S_PERIOD, S_RECEIVED, S_FIGURES, S_STREAM, S_EXPECT, S_END, S_FIRST, S_LAST, S_DONE = range(10)


def _prev_hash(entry):
    return record.genesis() if entry is None else entry[books.C_HASH]


def _check_order(core, kind, period, previous):
    """A period that has begun, not before the previous closure of its kind (a Z may repeat a
    day, an M or Y never repeats), and not inside a month or year already closed."""
    start = closure.check_period(kind, period)
    now = core.clock.now()
    if now is not None and timefmt.parse_time(start) > now:
        raise CloseError("CLOSE_PERIOD", "period %s has not begun by the device clock" % period)
    if previous is not None and (period < previous[books.C_PERIOD] or (kind != "Z" and period == previous[books.C_PERIOD])):
        raise CloseError("CLOSE_PERIOD", "period %s comes before the last %s closure's %s"
                         % (period, kind, previous[books.C_PERIOD]))
    outer = {"Z": "M", "M": "Y"}.get(kind)
    above = books.latest(core, outer) if outer else None
    if above is not None and period[:len(above[books.C_PERIOD])] <= above[books.C_PERIOD]:
        raise CloseError("CLOSE_PERIOD", "period %s lies in %s, already closed by an %s closure"
                         % (period, above[books.C_PERIOD], outer))


def _z_fields(core, last):
    """Range, figures and Merkle root of the open period (the records after the last Z)."""
    j = core.journal
    first = last[books.C_SEQ] + 1 if last is not None else 1
    figures = closure.Figures(last[books.C_GRAND] if last is not None else ())
    stream = merkle.Stream()
    if first <= j.last_seq:
        prev = j.chain(first)[0]
        for _, payload in j.records(first):
            prev = record.record_hash(prev, payload)
            stream.add(prev)
            if record.type_of(payload) == record.INVOICE:
                figures.add_invoice(cbor.decode(payload[:-record.SIG_LEN]))
    out = figures.fields()
    out[record.K_RANGE] = [first, j.last_seq]
    out[record.K_MERKLE] = stream.root()
    out[record.K_CHAIN] = _prev_hash(last)
    return out


def _write(core, kind, period, extra):
    extra[record.K_KIND], extra[record.K_PERIOD] = kind, period
    extra[record.K_PREV] = core.journal.head_hash
    size = len(record.encode_body(extra)) + 23 + len(core.device_id.encode()) + record.SIG_LEN
    if not core.journal.fits([stored_size(size), stored_size(record.MAX_RECORD)], 0):
        raise JournalError("JOURNAL_FULL", "no room for the closure and the checkpoint after it; archive first")
    fields, body, sig, prev = core._append(record.CLOSURE, extra, core._time_or_last())
    core.closing = None
    return {"received": 0, "record": body + sig, "hash": core.journal.head_hash, "seq": fields[record.K_SEQ]}


def on_close(core, fields):
    kind, period, offset, records, last = (fields["kind"], fields["period"], fields["offset"], fields["records"],
                                           fields["last"])
    closure.check_period(kind, period)
    if kind == "Z":
        if offset or records or not last:
            raise CloseError("CLOSE_SEQUENCE", "a Z closure is one request: offset 0, no records, last true")
        previous = books.latest(core, "Z")
        _check_order(core, kind, period, previous)
        return _write(core, "Z", period, _z_fields(core, previous))
    state = core.closing
    if offset == 0:
        previous = books.latest(core, kind)
        _check_order(core, kind, period, previous)
        start = record.genesis() if previous is None else previous[books.C_END]
        grand = previous[books.C_GRAND] if previous is not None else ()
        state = [kind, period, 0, closure.Figures(grand), merkle.Stream(), start, start, 0, 0, False]
    elif state is None or state[S_KIND] != kind or state[S_PERIOD] != period or state[S_RECEIVED] != offset:
        raise CloseError("CLOSE_SEQUENCE", "chunk at %d does not continue the %s closure in progress" % (offset, kind))
    state = _take(core, state, records, last)
    if not last:
        core.closing = state
        return {"received": state[S_RECEIVED]}
    if not state[S_DONE]:
        newest = books.latest(core, closure.INNER[kind])
        if newest is not None and newest[books.C_HASH] != state[S_END]:
            raise CloseError("CLOSE_INCOMPLETE", "the %s closures sent end before the device's newest one (seq %d); "
                             "send the rest, or the next one as terminator" % (closure.INNER[kind], newest[books.C_SEQ]))
    extra = state[S_FIGURES].fields()
    extra[record.K_RANGE] = [state[S_FIRST], state[S_LAST]]
    extra[record.K_MERKLE] = state[S_STREAM].root()
    extra[record.K_CHAIN] = _prev_hash(books.latest(core, kind))
    extra[record.K_END] = state[S_END]
    return _write(core, kind, period, extra)


def _take(core, state, records, last):
    """Check every closure of one chunk, then add them to the M or Y in progress: a refused chunk
    leaves the closure in progress as it was."""
    inner = closure.INNER[state[S_KIND]]
    key = core.signer.public_key()
    expect, done, taken = state[S_EXPECT], state[S_DONE], []
    for i in range(len(records)):
        if done:
            raise CloseError("CLOSE_SEQUENCE", "nothing may follow the terminator")
        try:
            f, body, sig = record.decode(records[i] if isinstance(records[i], bytes) else b"")
        except VerifyError:
            raise CloseError("CLOSE_RECORD", "records[%d] is not a record" % i)
        rec = body + sig
        if f.get(record.K_TYPE) != record.CLOSURE or f.get(record.K_KIND) != inner \
                or f.get(record.K_DEVICE) != core.device_id or len(rec) > record.MAX_RECORD \
                or not (p256.is_low_s(sig) and p256.verify(key, hashlib.sha256(
                    record.signing_input(f[record.K_PREV], body)).digest(), sig)):
            raise CloseError("CLOSE_RECORD", "records[%d] is not a %s closure signed by this device" % (i, inner))
        if f[record.K_CHAIN] != expect:
            raise CloseError("CLOSE_CHAIN", "records[%d] does not follow the %s closure before it" % (i, inner))
        if f[record.K_PERIOD][:len(state[S_PERIOD]) + 1] == state[S_PERIOD] + "-":
            expect = record.record_hash(f[record.K_PREV], rec)
            taken.append((f, expect))
        elif f[record.K_PERIOD] > state[S_PERIOD] and last and i == len(records) - 1:
            done = True
        else:
            raise CloseError("CLOSE_CHAIN", "records[%d] is of period %s, outside %s (only the last record of the "
                             "last chunk may be of a later period)" % (i, f[record.K_PERIOD], state[S_PERIOD]))
    for f, h in taken:
        state[S_FIGURES].add_closure(f)
        state[S_STREAM].add(h)
        if not state[S_FIRST]:
            state[S_FIRST] = f[record.K_SEQ]
        state[S_LAST] = f[record.K_SEQ]
        state[S_END] = state[S_EXPECT] = h
    state[S_DONE] = done
    state[S_RECEIVED] += len(records)
    return state


def on_x(core, fields):
    """The open period's figures, computed like a Z but not written (key 22 kind "X")."""
    out = _z_fields(core, books.latest(core, "Z"))
    out[record.K_KIND] = "X"
    out[record.K_TIME] = core._time_or_last()
    return {"figures": out}
