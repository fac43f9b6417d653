"""Journal recovery at power-up: find the ring's logical start, walk every record, decide the tail.

PROTOCOL.md section 8 is the spec. In short:

1. Every sector is read at its start: a valid record there (magic, length, CRC, a body with a
   seq) makes it a *valid* sector; all 0xFF is *erased*; anything else is *garbage*.
2. The logical start is the valid sector with the lowest first seq. From there, sectors are
   taken in ring order while each next sector is valid and starts with the seq that follows the
   previous sector's last record: that is the *run*; its last sector is the head.
3. Inside a sector, records follow each other at aligned offsets. At the first position that
   holds no valid record: erased to the sector end means the sector's data ends there; otherwise
   it is a torn write when, within SPAN, the record with the expected seq follows (the torn bytes
   are skipped), or when erased flash follows the torn bytes to the sector end. Anything else is
   damage: the journal is read-only (JOURNAL_CORRUPT) and records before the damage stay readable.
4. Outside the run only erased sectors are expected, plus at most one garbage sector at each end
   of the erased gap: right after the head when it can be a torn first record of a fresh sector
   (``_torn_fresh``), or right before the logical start (an erase that power cut short; step 5
   shows nothing unarchived was in it). Both are erased again at power-up (device/journal.py
   ``resume``); any other garbage, or a valid sector outside the run, is damage.
5. The newest CHECKPOINT with ``archived = [S, H]`` makes first_live = S + 1 and anchors the chain
   there (H is record S's hash); without one, first_live = 1 and GENESIS anchors. The first record
   of the run must not be newer than first_live: a record that was never archived is never
   missing silently.

The walk reads every record's frame and CRC and hashes it (C speed on a board: ``binascii`` and
``hashlib``); only CHECKPOINT bodies are decoded. It keeps per sector the first and last seq and
the prev of its first record, plus 4 bytes of request id per live record (device/journal.py).
"""

from protocol import record
from device.ring import ALIGN, SPAN, align, seq_of

ERASED = -1
GARBAGE = -2


def _classify(ring, i):
    found = ring.parse(ring.base(i))
    if found is not None:
        seq = seq_of(found[0])
        return seq if seq is not None and seq > 0 else GARBAGE
    return ERASED if ring.erased(ring.base(i), ring.base(i + 1)) else GARBAGE


def _accept(j, walk, entry, pos, payload, seq):
    prev = record.genesis() if seq == 1 else walk[0]
    fields = j.note(payload, seq)
    if prev is None and fields is not None:
        prev = fields[record.K_PREV]      # a checkpoint anchors the chain
    if pos == j.ring.base(entry[0]):
        entry[3] = prev
    walk[0] = None if prev is None else record.record_hash(prev, payload)
    entry[2] = seq


def _walk_sector(j, walk, i, expect):
    """Walk the records of sector ``i``; False when damage stopped the walk."""
    ring = j.ring
    base, end = ring.base(i), ring.base(i + 1)
    entry = [i, expect, expect - 1, None]
    j.run.append(entry)
    pos = base
    while pos < end:
        found = ring.parse(pos)
        if found is not None:
            _accept(j, walk, entry, pos, found[0], expect)
            expect += 1
            pos = found[1]
            continue
        if ring.erased(pos, end):
            break
        window = min(end, pos + SPAN)
        q = pos + ALIGN
        while q < window and ring.parse(q) is None:
            q += ALIGN
        if q < window:
            if seq_of(ring.parse(q)[0]) != expect:
                j.corrupt = pos
                return False
            j.skips[pos] = q
            j.torn += 1
            pos = q
            continue
        if not ring.erased(window, end):
            j.corrupt = pos
            return False
        j.torn += 1
        j.skips[pos] = align(ring.last_used(pos, window))
        pos = j.skips[pos]
        break
    j.tail = pos
    return True


def _outside(j, kinds, outside):
    """Sectors outside the run: erased, or garbage at an end of the erased gap (to erase)."""
    ring = j.ring
    for t in range(len(outside)):
        i = outside[t]
        if kinds[i] == ERASED:
            continue
        if kinds[i] == GARBAGE and ((t == 0 and _torn_fresh(j, i)) or (t == len(outside) - 1 and j.run)):
            j.garbage.append(i)
            continue
        j.corrupt = ring.base(i)
        return


def _torn_fresh(j, i):
    """Whether garbage sector ``i`` after the head can be a torn first record, or such a sector's
    interrupted erase: the head sector had no room for another record (else nothing is written
    to the next one), and no record follows the garbage, nor anything beyond SPAN (a torn write
    reaches no further) unless an erase began (an erase clears a sector from its start)."""
    ring = j.ring
    base = ring.base(i)
    if j.run and ring.base(j.run[-1][0] + 1) - j.tail >= SPAN:
        return False
    for q in range(base + ALIGN, base + SPAN, ALIGN):
        if ring.parse(q) is not None:
            return False
    return ring.erased(base + SPAN, ring.base(i + 1)) or ring.erased(base, base + 1)


def _anchor_live(j):
    """Anchor first_live inside an older sector: its prev is the archived hash H. Later sectors
    the walk reached before any anchor (records between S + 1 and the checkpoint) get theirs by
    hashing forward, one sector at a time."""
    seq = j.first_live
    k = j.entry_index(seq)
    entry = j.run[k]
    if entry[3] is not None:
        return                      # the walk was anchored before first_live: all known
    if seq == entry[1]:
        entry[3] = j.archived[1]
    else:
        j.anchor = (seq, j.position(seq), j.archived[1])
    for entry in j.run[k + 1:]:
        if entry[3] is not None:
            return
        entry[3] = j.chain(entry[1] - 1)[1]


def scan(j):
    """Fill the journal ``j`` from flash (rules in the module docstring)."""
    ring = j.ring
    kinds = [_classify(ring, i) for i in range(ring.n)]
    start = None
    for i in range(ring.n):
        if kinds[i] > 0 and (start is None or kinds[i] < kinds[start]):
            start = i
    if start is None:
        _outside(j, kinds, list(range(ring.n)))
        return
    walk = [None]   # the hash of the last record walked, once anchored
    i, first = start, kinds[start]
    while _walk_sector(j, walk, i, j.last_seq + 1 if j.run else first):
        nxt = (i + 1) % ring.n
        if nxt == start or kinds[nxt] != j.last_seq + 1:
            break
        i = nxt
    j.head_hash = walk[0] or b""
    live = j.archived[0] + 1 if j.archived is not None else 1
    if j.corrupt is None:
        _outside(j, kinds, [(i + 1 + t) % ring.n for t in range(ring.n - len(j.run))])
    if j.corrupt is None and first > live:
        j.corrupt = ring.base(start)    # records that were never archived are gone
    j.first_live = max(first, live)
    j.rids = bytearray(j.rids[(j.first_live - first) * 4:])
    if j.archived is not None and j.first_live <= j.last_seq:
        _anchor_live(j)
