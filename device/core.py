"""The fiscal core: a pure, synchronous state machine, ``Core.handle(request) -> response``.

It owns the fiscal counter, the time stamp and the signature (DESIGN-NOTES section 2). State it
keeps in RAM is either derived from the journal at power-up (counter, record sequence, chain
head, the request-id index, the marks of device/journal.py) or computed from it on demand
(running totals, closure figures), or is allowed to vanish with power (pending nonces, armed
credit evidence, the upload buffer, the clock). One sealed invoice is one journal record. Every
refusal is a typed FiscalError answered on the wire, raised before any state changes. The
messages a seal needs are here (SET_TIME) and in the mixin device/sealing.py (PREPARE, SEAL,
COMMIT); the others are imported only when used, to spare a board's heap (``LAZY`` names their
modules): device/readout.py (INFO, PING, READ_JOURNAL, HEAD), device/status.py (STATUS, ABORT),
device/identity.py (power-up, PROVISION, CERTIFY), device/profile.py (power-up, PROFILE,
PROFILE_READ), device/archive.py (ARCHIVED), device/credits.py (EVIDENCE, credit notes),
device/closing.py (CLOSE, X), device/batch.py (SEAL_BATCH). PROTOCOL.md (version 3) is the spec.

Unloading (``unload=True``, what device/board.py passes): a board pays for the modules imported on
first use only while they run. Every module of ``device`` and ``protocol`` imported since the core
was built (the journal's recovery walk included) is dropped after the power-up and after each
request: its namespace cleared, its entries in ``sys.modules`` and its package removed, garbage
collected. The next request that needs one imports it again from flash (tools/upy_reimport.py
measures that: a fraction of the signature or verification the message does anyway); the names
it interned stay. An M or Y closure received in chunks keeps its modules until its last chunk
(``closing`` holds their objects). So what outlives a request holds plain data only, or objects
of resident modules: this module imports device/signer.py for the Signer device/identity.py
makes, and a board passes ``table`` (a Signer without one imports device/p256_table.py).
"""

import gc
import sys

from protocol import invoice, messages, record, timefmt
from protocol.errors import ClockError, FiscalError, IdentityError, JournalError
from device.journal import Journal
from device.nonces import Nonces
from device.ports import DeviceClock
from device.sealing import Sealing
from device.signer import Signer   # noqa: F401  resident: the core keeps one (device/identity.py makes it)

FIRMWARE = "fiscal-core 0.3.0"
PROTOCOL_VERSION = 3
TIME_SLACK = 2          # clock adjustments up to this many seconds are not journalled
MAX_PING = 64          # device/readout.py
# Erased sectors a record may not take (device/journal.py): index = record type. A CLOSURE may take
# the last one (device/closing.py keeps room for the checkpoint after it).
RESERVE = (0, 2, 1, 1, 0, 1, 0)
# What a device whose POWER_UP did not fit (fault JOURNAL_FULL) still serves.
FULL_OK = ("INFO", "PING", "READ_JOURNAL", "HEAD", "STATUS", "ARCHIVED", "PROVISION", "CERTIFY",
           "PROFILE_READ", "CLOSE", "X")
# Before PROVISION, only what signs nothing (device/identity.py); with an identity fault, only reads.
UNSIGNED = ("INFO", "PING", "PROVISION", "READ_JOURNAL")
READ_ONLY = ("INFO", "PING", "READ_JOURNAL")
IDENTITY_FAULTS = ("KEY_MISSING", "JOURNAL_MISMATCH", "KEYSTORE_FAILURE")
FILL_LEVELS = (800000, 900000, 950000)
# " NAME=module ...": messages handled by device/<module>.py ``on_<name>(core, fields)``, imported
# when one arrives (and dropped after it on a board): one string instead of a method per message.
LAZY = (" INFO=readout PING=readout READ_JOURNAL=readout HEAD=readout STATUS=status ABORT=status "
        "PROVISION=identity CERTIFY=identity PROFILE=profile PROFILE_READ=profile ARCHIVED=archive "
        "EVIDENCE=credits CLOSE=closing X=closing SEAL_BATCH=batch ")


class Core(Sealing):
    def __init__(self, flash, clock, entropy, keystore, max_pending=10, nonce_ttl=120,
                 journal_start=0, journal_size=None, firmware=FIRMWARE, table=None, unload=False):
        """``table``: the signer's fixed-base table (device/table_file.py on a board); ``unload``:
        drop the modules a request imported once it is answered (see the module docstring)."""
        self.resident = tuple(sys.modules) if unload else None
        self.entropy = entropy
        self.clock = DeviceClock(clock)
        self.keystore = keystore
        self.table = table
        self.firmware = firmware
        self.nonces = Nonces(max_pending, nonce_ttl)
        self.journal = Journal(flash, journal_start, journal_size)
        self.upload = None   # [message, total, request id, bytearray] while a chunked upload runs
        self.totals = None   # running totals, computed on first use (device/archive.py)
        self.armed = []      # credit evidence armed by EVIDENCE (device/credits.py), RAM only
        self.closing = None  # an M or Y closure being received in chunks (device/closing.py)
        self.profile_memo = None   # (hash, decoded profile) once read (device/sealing.py _the_profile)
        self.counter, self.last_time = 0, 0
        last = self.journal.last
        if last is not None:
            fields = record.decode(last)[0]
            self.counter, self.last_time = fields[record.K_COUNTER], fields[record.K_TIME]
        self.fault = ""
        self.fault_detail = ""
        from device import identity, profile
        identity.load(self)
        profile.load(self)
        if self.signer is not None and not self.fault:
            torn, erased = self.journal.torn, self.journal.resume()
            self._power_up()
            identity.anchor(self)
            if not self.fault:
                self._recovered(torn, erased)
                profile.heal(self)
        del identity, profile
        self._unload()

    def _unload(self):
        """Forget the modules of ``device`` and ``protocol`` imported since the core was built
        (``unload`` only), unless an M or Y closure is half received. Each one's namespace is
        cleared, and its entries in ``sys.modules`` and its package are set to None before they
        are deleted: a MicroPython dict keeps a deleted entry's value in its table until the slot
        is reused, and the conservative collector keeps everything reachable from a stale word,
        so a whole module could stay alive through one of them."""
        resident, modules = self.resident, sys.modules
        if resident is None or len(modules) == len(resident) or self.closing is not None:
            return
        for name in [m for m in modules if m not in resident and (m[:7] == "device." or m[:9] == "protocol.")]:
            if modules[name] is not None:
                modules[name].__dict__.clear()
            modules[name] = None
            del modules[name]
            dot = name.rfind(".")
            package = modules.get(name[:dot])
            if package is not None and getattr(package, name[dot + 1:], None) is not None:
                setattr(package, name[dot + 1:], None)
                delattr(package, name[dot + 1:])
        gc.collect()

    @property
    def seq(self):
        return self.journal.last_seq

    @property
    def last_hash(self):
        return self.journal.head_hash

    def _power_up(self):
        try:
            self._append(record.POWER_UP, {record.K_FIRMWARE: self.firmware}, self.last_time)
            self.fault = ""
        except JournalError as exc:
            # Full or damaged: stay up, read-only for sales; a full one recovers by ARCHIVED.
            self.fault = exc.name
            self.fault_detail = exc.detail

    def _recovered(self, torn, erased):
        """EVENT ``recovered`` after the POWER_UP when recovery skipped torn writes or finished an
        interrupted erase (a power cut happened), when it fits beside the invoices' room."""
        if (torn or erased) and self.journal.fits([256], 2):
            self._append(record.EVENT, {record.K_EVENT: "recovered", record.K_DETAIL: {1: torn, 2: erased}},
                         self.last_time)

    def _storage_failure(self, rtype, t):
        """EVENT ``storage_failure`` (detail: the type of the record that failed) right after a
        flash program failed and nothing was written, when it fits; if the flash fails again the
        refusal itself is all that reports it."""
        if self.journal.fits([256], 2):
            try:
                self._append(record.EVENT, {record.K_EVENT: "storage_failure", record.K_DETAIL: {1: rtype}}, t)
            except JournalError:
                return

    # -- writing records ---------------------------------------------------------------------
    def _append(self, rtype, extra, t):
        """Sign and journal one record; the in-RAM state moves only if the record is on flash.
        Returns (fields, body, signature, prev). Fill events follow a record that crosses a level."""
        before = self._fill()
        counter = self.counter + (1 if rtype == record.INVOICE else 0)
        prev = self.journal.head_hash
        fields = {record.K_TYPE: rtype, record.K_SEQ: self.journal.last_seq + 1, record.K_COUNTER: counter,
                  record.K_TIME: t, record.K_DEVICE: self.device_id}
        for key in extra:
            fields[key] = extra[key]
        body = record.encode_body(fields)
        sig = self.signer.sign(record.signing_input(prev, body))
        try:
            self.journal.append(body + sig, RESERVE[rtype])
        except JournalError as exc:
            if exc.name == "STORAGE_FAILURE" and rtype != record.EVENT:
                self._storage_failure(rtype, t)
            raise
        self.counter, self.last_time = counter, t
        if rtype == record.INVOICE:
            self._count(fields)
        if rtype != record.EVENT and rtype != record.CHECKPOINT and rtype != record.CLOSURE:
            self._fill_events(before, t)
        return fields, body, sig, prev

    def _count(self, fields):
        """Add one invoice record to the running totals, once device/archive.py computed them."""
        if self.totals is not None:
            self.totals = record.add_totals(self.totals, record.signed_groups(
                fields[record.K_GROUPS], fields[record.K_INVOICE_TYPE], invoice.CREDIT_TYPES))

    def _fill(self):
        """Fill level in ppm of the space invoices may use (PROTOCOL.md 4.3 ``fill_ppm``)."""
        j = self.journal
        usable = j.capacity() - 2 * j.ring.sector
        return min(1000000, (usable - j.room(2)) * 1000000 // usable)

    def _fill_events(self, before, t):
        """An EVENT record each time the fill level crosses 80, 90 or 95 % upward, when it fits
        beside the invoices of the pending nonces (it never takes the room they were promised)."""
        after = self._fill()
        for level in FILL_LEVELS:
            sizes = [self.nonces.pending[n]["size"] for n in sorted(self.nonces.pending)]
            if before < level <= after and self.journal.fits(sizes + [256], 2):
                self._append(record.EVENT, {record.K_EVENT: "fill_%d" % (level // 10000),
                                            record.K_DETAIL: {1: after}}, t)

    # -- dispatch ----------------------------------------------------------------------------
    def _require_key(self, name):
        if self.fault in IDENTITY_FAULTS and name not in READ_ONLY:
            raise IdentityError(self.fault, self.fault_detail)
        if self.signer is None and name not in UNSIGNED:
            raise IdentityError("NOT_PROVISIONED", "%s needs the device key: send PROVISION first" % name)

    def handle(self, payload):
        """One request payload (canonical CBOR) -> one response payload. Never raises FiscalError."""
        mid = 0
        try:
            mid, mapping = messages.parse_request(payload)
            name = messages.MESSAGES[mid][0]
            fields = messages.request_fields(mid, mapping)
            self._require_key(name)
            if self.fault == "JOURNAL_FULL" and name not in FULL_OK:
                raise JournalError("JOURNAL_FULL", "the journal is full and read-only for sales; archive it "
                                   "(READ_JOURNAL, then ARCHIVED) to make room: %s" % self.fault_detail)
            self.nonces.expire(self.clock.now())
            at = LAZY.find(" %s=" % name)
            if at < 0:
                answer = getattr(self, "_on_" + name.lower())(fields)
            else:   # device.<module>.on_<name>(core, fields), the module imported now (a board's heap)
                module = LAZY[at + len(name) + 2:LAZY.find(" ", at + 1)]
                answer = getattr(getattr(__import__("device." + module), module), "on_" + name.lower())(self, fields)
            return messages.encode_response(name, answer)
        except FiscalError as exc:
            return messages.encode_error(mid, exc)
        finally:
            if self.resident is not None:
                self.profile_memo = None   # on a board a decoded profile lives one message at most (its heap)
            self._unload()

    def _now(self):
        now = self.clock.now()
        if now is None:
            raise ClockError("CLOCK_UNSET", "the clock was not set since power-up; send SET_TIME")
        return max(now, self.last_time)

    def _time_or_last(self):
        now = self.clock.now()
        return self.last_time if now is None else max(now, self.last_time)

    # -- messages ----------------------------------------------------------------------------
    def _on_set_time(self, fields):
        t = fields["time"]
        if t < timefmt.MIN_TIME or t > timefmt.MAX_TIME:
            raise ClockError("TIME_INVALID", "time %d is outside %d..%d" % (t, timefmt.MIN_TIME, timefmt.MAX_TIME))
        if t < self.last_time:
            raise ClockError("CLOCK_BACKWARDS", "time %s is before the last record (%s)"
                             % (timefmt.format_time(t), timefmt.format_time(self.last_time)))
        now = self.clock.now()
        journaled = now is None or abs(t - now) > TIME_SLACK
        if journaled:
            extra = {} if now is None else {record.K_PREVIOUS_TIME: now}
            self._append(record.TIME, extra, t)
        self.clock.set(t)
        self.nonces.expire(t)
        return {"time": t, "journaled": journaled}
