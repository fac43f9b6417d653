"""The reference verifier: what a third party runs with only the public key and PROTOCOL.md (section 9).

``verify_records`` takes records in journal order (each ``body || signature``, as READ_JOURNAL and
the audit export deliver them) that start either at seq 1 (anchored by GENESIS; the first record
must be a POWER_UP) or at a CHECKPOINT or CLOSURE (anchored by its stored prev, its totals taken as
given). It stops at the first violation with a VerifyError naming the record and the rule:

- VERIFY_RECORD: not a canonical CBOR map plus 64 bytes, longer than 1920 bytes, device id changes;
- VERIFY_SCHEMA / VERIFY_AMOUNTS: protocol/schema.py, one record on its own;
- VERIFY_COUNTER: seq or fiscal counter not continuous;
- VERIFY_CHAIN: nothing anchors the list, or a checkpoint's or closure's prev is not the previous
  record hash;
- VERIFY_SIGNATURE: high s, or ECDSA over SHA-256(``FMDREC2\\x00`` || prev || body) fails;
- VERIFY_TIME: time goes back, previous_time inconsistent;
- VERIFY_ORDER: journal not starting with POWER_UP, an invoice before the clock was set;
- VERIFY_REQUEST_ID, VERIFY_TOTALS, VERIFY_ARCHIVED: request id twice, checkpoint totals or
  archived hash wrong;
- VERIFY_PROFILE, VERIFY_CREDIT, VERIFY_CLOSURE: protocol/verify_books.py (the profile binding
  the invoices, the credit rules and root, closure figures, Merkle roots and chains).

The profile: ``profile`` (canonical CBOR, e.g. the one an audit export carries) or one of the
shipped profiles, whichever has the hash the journal names. ``verify_head`` checks a HEAD
statement and its signature. Signature checks dominate the cost; a host may pass a faster
``verify_sig(message, signature)`` with the contract of :func:`protocol.p256.verify` plus the
low-s rule (hostd/books/keys.py).
"""

import hashlib

from protocol import cbor, invoice, p256, record, schema
from protocol.errors import CborError, VerifyError
from protocol.verify_books import Books

fail = schema.fail


def pure_verifier(public_key):
    """The verify_sig contract in pure Python: low s, then ECDSA P-256 over SHA-256(message)."""
    point = p256.decode_point(public_key)
    return lambda message, sig: p256.is_low_s(sig) and p256.verify(point, hashlib.sha256(message).digest(), sig)


class _State:
    """What the walk knows before each record (PROTOCOL.md 9, "State")."""

    def __init__(self):
        self.prev = record.genesis()
        self.seq = 0
        self.counter = 0
        self.last_time = 0
        self.device = None
        self.clock = "unset"       # since the last POWER_UP: "unset", "set", or "unknown"
        self.time_rec = None       # time of the last TIME record since that POWER_UP
        self.totals = []
        self.archived = 0
        self.request_ids = {}
        self.hashes = {}
        self.invoices = 0
        self.checkpoints = []
        self.closures = []
        self.books = None
        self.memo = {}             # what the amounts checks build once per profile (schema.py)


def _start(st, fields, rtype, index):
    if fields[record.K_SEQ] == 1:
        if rtype != record.POWER_UP:
            fail("VERIFY_ORDER", index, "the journal starts with a %s record; record 1 must be a POWER_UP"
                 % schema.TYPE_NAMES[rtype])
        return
    if rtype not in (record.CHECKPOINT, record.CLOSURE):
        fail("VERIFY_CHAIN", index, "the records start at seq %d with a record of type %s: only seq 1, a CHECKPOINT or a "
             "CLOSURE anchors a chain" % (fields[record.K_SEQ], schema.TYPE_NAMES[rtype]))
    st.prev = fields[record.K_PREV]
    st.seq = fields[record.K_SEQ] - 1
    st.counter = fields[record.K_COUNTER]
    st.last_time = fields[record.K_TIME]
    st.totals = fields[record.K_TOTALS] if rtype == record.CHECKPOINT else None   # None: taken at the next checkpoint
    st.clock = "unknown"
    if rtype == record.CHECKPOINT:
        st.books.start_checkpoint(fields, index)


def _check_time(st, fields, rtype, index):
    t = fields[record.K_TIME]
    if t < st.last_time:
        fail("VERIFY_TIME", index, "time %d goes back before the previous record's %d" % (t, st.last_time))
    if rtype == record.POWER_UP:
        st.clock, st.time_rec = "unset", None
    elif rtype == record.TIME:
        previous = fields.get(record.K_PREVIOUS_TIME)
        if st.clock == "unset" and previous is not None:
            fail("VERIFY_TIME", index, "the first TIME record after a power-up carries previous_time")
        if st.clock == "set" and previous is None:
            fail("VERIFY_TIME", index, "TIME record lacks previous_time although the clock was set since power-up")
        if previous is not None and st.time_rec is not None and previous < st.time_rec:
            fail("VERIFY_TIME", index, "previous_time %d is before the previous TIME record's time %d"
                 % (previous, st.time_rec))
        st.clock, st.time_rec = "set", t
    elif rtype == record.INVOICE and st.clock == "unset":
        fail("VERIFY_ORDER", index, "invoice record after a power-up before any TIME record set the clock")
    st.last_time = t


def _check_invoice(st, fields, index):
    schema.check_amounts(fields, index, st.books.need_profile(index), st.memo)
    rid = fields[record.K_REQUEST_ID]
    if rid in st.request_ids:
        fail("VERIFY_REQUEST_ID", index, "request id %s was already sealed by record %d"
             % (record.hexs(rid), st.request_ids[rid]))
    st.request_ids[rid] = fields[record.K_SEQ]
    if st.totals is not None:
        st.totals = record.add_totals(st.totals, record.signed_groups(
            fields[record.K_GROUPS], fields[record.K_INVOICE_TYPE], invoice.CREDIT_TYPES))
    st.books.invoice(fields, index)
    st.invoices += 1


def _check_checkpoint(st, fields, index, first):
    seq = fields[record.K_SEQ]
    if not first:
        if fields[record.K_PREV] != st.prev:
            fail("VERIFY_CHAIN", index, "checkpoint prev is not the hash of record %d" % (seq - 1))
        if st.totals is not None and fields[record.K_TOTALS] != st.totals:
            fail("VERIFY_TOTALS", index, "checkpoint totals %r differ from the running totals %r"
                 % (fields[record.K_TOTALS], st.totals))
        st.totals = fields[record.K_TOTALS]
        st.books.checkpoint(fields, index)
    archived = fields.get(record.K_ARCHIVED)
    if archived is not None:
        s, h = archived
        if s >= seq or s <= st.archived:
            fail("VERIFY_ARCHIVED", index, "archived seq %d is not after the previous archived seq %d and before "
                 "this checkpoint" % (s, st.archived))
        known = fields[record.K_PREV] if s == seq - 1 else st.hashes.get(s)
        if known is not None and known != h:
            fail("VERIFY_ARCHIVED", index, "archived hash is not the hash of record %d" % s)
        st.archived = s
    st.checkpoints.append(seq)


def profiles_for(profile):
    """{SHA-256: canonical bytes} of the shipped profiles and of ``profile`` (bytes or None)."""
    from protocol import profile_host
    known = profile_host.by_hash()
    if profile is not None:
        known[hashlib.sha256(bytes(profile)).digest()] = bytes(profile)
    return known


def new_state(profile=None):
    """A fresh walk's state: nothing seen, the profiles it may meet known (``profile`` as in
    :func:`verify_records`)."""
    st = _State()
    st.books = Books(profiles_for(profile), profile)
    return st


def step(st, rec, index, check_sig, decode=record.decode):
    """Check one record against the walk's state ``st`` (from :func:`new_state` for the first) and
    advance it; return the record's fields. On a VerifyError ``st`` is left part-way: start again.
    ``decode``: record.decode, or a faster one with its exact contract (hostd/intake/fastcbor.py)."""
    fields, body, sig = decode(rec, index)
    if len(rec) > record.MAX_RECORD:
        fail("VERIFY_RECORD", index, "record is %d bytes, more than %d" % (len(rec), record.MAX_RECORD))
    rtype = schema.check_fields(fields, index, st.books.profile)
    if index == 0:
        _start(st, fields, rtype, index)
    if fields[record.K_SEQ] != st.seq + 1:
        fail("VERIFY_COUNTER", index, "sequence number is %d, expected %d (a record is missing, added or "
             "out of order)" % (fields[record.K_SEQ], st.seq + 1))
    if rtype == record.CHECKPOINT:
        _check_checkpoint(st, fields, index, index == 0)
    if rtype == record.CLOSURE and index > 0 and fields[record.K_PREV] != st.prev:
        fail("VERIFY_CHAIN", index, "closure prev is not the hash of record %d" % (fields[record.K_SEQ] - 1))
    if not p256.is_low_s(sig):
        fail("VERIFY_SIGNATURE", index, "signature has a high s (above n/2): not a canonical signature")
    if not check_sig(record.signing_input(st.prev, body), sig):
        fail("VERIFY_SIGNATURE", index, "signature does not verify with this public key over the previous "
             "record's hash")
    if st.device is None:
        st.device = fields[record.K_DEVICE]
    elif fields[record.K_DEVICE] != st.device:
        fail("VERIFY_RECORD", index, "device id changes from %s to %s" % (st.device, fields[record.K_DEVICE]))
    want = st.counter + 1 if rtype == record.INVOICE else st.counter
    if fields[record.K_COUNTER] != want:
        fail("VERIFY_COUNTER", index, "fiscal counter is %d, expected %d" % (fields[record.K_COUNTER], want))
    _check_time(st, fields, rtype, index)
    if rtype == record.INVOICE:
        _check_invoice(st, fields, index)
    elif rtype == record.EVENT:
        st.books.event(fields, index, st.counter)
    st.seq, st.counter = fields[record.K_SEQ], want
    st.prev = record.record_hash(st.prev, rec)
    st.hashes[st.seq] = st.prev
    if rtype == record.CLOSURE:
        if index == 0:
            st.books.start_closure(fields, st.prev, index)
        else:
            st.books.closure(fields, index, st.prev)
        st.closures.append(st.seq)
    else:
        st.books.add(st.prev, fields, rtype)
    return fields


class Walker:
    """The same checks one record at a time, the state kept between calls: a receiver that gets a
    journal in pieces (the authority, hostd/authority/) verifies each piece as it comes, exactly
    as ``verify_records`` would the whole. After a VerifyError the walker is spent."""

    def __init__(self, public_key, verify_sig=None, profile=None, decode=None):
        self.check_sig = verify_sig or pure_verifier(public_key)
        self.decode = decode or record.decode
        if verify_sig is not None:
            p256.decode_point(public_key)   # an unusable key is VERIFY_KEY, whoever checks signatures
        self.state = new_state(profile)
        self.count = 0
        self.first = 0

    def feed(self, rec):
        fields = step(self.state, rec, self.count, self.check_sig, self.decode)
        if self.count == 0:
            self.first = fields[record.K_SEQ]
        self.count += 1
        return fields

    def summary(self):
        st = self.state
        books = st.books
        return {"records": self.count, "invoices": st.invoices, "counter": st.counter, "device_id": st.device,
                "first_seq": self.first, "last_seq": st.seq, "last_hash": st.prev, "last_time": st.last_time,
                "totals": st.totals, "checkpoints": st.checkpoints, "archived_seq": st.archived,
                "closures": st.closures, "profile_hash": books.profile_hash,
                "profile_id": books.profile["id"] if books.profile else None,
                "credit_root": None if books.root in (None, "unknown") else books.root,
                "unchecked": books.unchecked}


def verify_records(records, public_key, verify_sig=None, progress=None, profile=None, decode=None):
    """Verify a journal or a journal segment; return a summary dict, or raise VerifyError at the
    first bad record. ``public_key`` is the 64-byte X||Y (or 65-byte 0x04-prefixed) device key;
    ``progress`` is called with the number of records checked so far; ``profile`` the canonical
    CBOR of the country profile the journal names, when it is not a shipped one; ``decode`` a
    record decoder with the contract of record.decode (a host's faster one)."""
    walker = Walker(public_key, verify_sig, profile, decode)
    for index in range(len(records)):
        walker.feed(records[index])
        if progress is not None:
            progress(index + 1)
    return walker.summary()


_HEAD = {record.H_FORMAT: str, record.H_DEVICE: str, record.H_SEQ: int, record.H_COUNTER: int,
         record.H_HASH: bytes, record.H_TIME: int, record.H_CHALLENGE: bytes}


def verify_head(statement, signature, public_key, verify_sig=None):
    """Fields of a HEAD statement (H_* keys) whose signature verifies, else VerifyError VERIFY_HEAD."""
    check_sig = verify_sig or pure_verifier(public_key)
    try:
        fields = cbor.decode(statement)
    except CborError as exc:
        raise VerifyError("VERIFY_HEAD", "head statement is not canonical CBOR: %s" % exc.detail)
    if not isinstance(fields, dict) or sorted([k for k in fields if schema.is_int(k)]) != sorted(_HEAD) \
            or len(fields) != len(_HEAD):
        raise VerifyError("VERIFY_HEAD", "head statement must be a map of exactly the keys 1-7")
    for key in _HEAD:
        value = fields[key]
        if isinstance(value, bool) or not isinstance(value, _HEAD[key]) or (_HEAD[key] is int and value < 0):
            raise VerifyError("VERIFY_HEAD", "head statement key %d has the wrong type" % key)
    if fields[record.H_FORMAT] != record.HEAD_FORMAT or len(fields[record.H_HASH]) != record.HASH_LEN \
            or len(fields[record.H_CHALLENGE]) > record.MAX_CHALLENGE:
        raise VerifyError("VERIFY_HEAD", "head statement is not an %s statement" % record.HEAD_FORMAT)
    if not p256.is_low_s(signature) or not check_sig(record.HEAD_DOMAIN + bytes(statement), signature):
        raise VerifyError("VERIFY_HEAD", "head signature does not verify with this public key")
    return fields
