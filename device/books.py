"""What a checkpoint must keep of the closures, and where the device finds its newest closures.

ARCHIVED may erase closures and credit records (never the open period after the last Z), so a
CHECKPOINT carries what the next closure and the next credit need (PROTOCOL.md 7.1): the credit
root, the profile hash, and per kind (Z, M, Y) the newest closure's seq, record hash, period, end
and perpetual grand totals. The journal keeps the seq of the newest closure of each kind
(device/journal.py ``closed``); ``latest`` reads that record while it is on flash, else the
newest checkpoint's entry, which is always live. Imported by ARCHIVED and CLOSE only.
"""

from protocol import cbor, closure, record

KINDS = ("M", "Y", "Z")
# entry of a checkpoint's ``closed`` list, and what ``latest`` answers after the kind
C_KIND, C_SEQ, C_HASH, C_PERIOD, C_END, C_GRAND = 0, 1, 2, 3, 4, 5


def _body(rec):
    return cbor.decode(rec[:-record.SIG_LEN])


def latest(core, kind):
    """[kind, seq, record hash, period, end, grand] of the newest closure of ``kind``, or None."""
    j = core.journal
    seq = j.closed.get(kind)
    if seq is None:
        return None
    rec = j.read(seq)
    if rec is not None:
        f = _body(rec)
        h = record.record_hash(f[record.K_PREV], rec)
        return [kind, seq, h, f[record.K_PERIOD], f.get(record.K_END, h), closure.grand_of(f)]
    for entry in _body(j.read(j.checkpoint)).get(record.K_CLOSED, ()):
        if entry[C_KIND] == kind:
            return entry
    return None


def checkpoint_fields(core):
    """The keys a CHECKPOINT adds for closures, credits and the profile (those that exist)."""
    j = core.journal
    out = {}
    if j.credit_root is not None:
        out[record.K_CREDIT_ROOT] = j.credit_root
    if j.profile_hash is not None:
        out[record.K_PROFILE] = j.profile_hash
    closed = [latest(core, kind) for kind in KINDS]
    closed = [entry for entry in closed if entry is not None]
    if closed:
        out[record.K_CLOSED] = closed
    return out
