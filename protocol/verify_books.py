"""The verifier's books: the profile that binds the records, the credit rules and root, and the
closures' figures, Merkle roots and chains (PROTOCOL.md 9, steps 13-16). Host only.

``Books`` follows the records protocol/verify.py walks. What it can check depends on where the list
starts: from record 1 everything is known; from a CHECKPOINT the profile, credit root and newest
closures are taken as the checkpoint states them, and what happened before stays unchecked (the
balance of an original credited before the segment, the figures of a Z whose period began before
it, an M whose Zs are not all in the list). Each such skip is listed in ``unchecked``.
"""

from protocol import cbor, closure, invoice, merkle, record, smt
from protocol.errors import VerifyError

KINDS = {"credit_note": ("sale", "advance"), "export_credit": ("export",)}


def fail(name, index, text):
    raise VerifyError(name, "record %d (index %d): %s" % (index + 1, index, text), index)


class Books:
    def __init__(self, profiles, given=None):
        self.profiles = profiles        # {SHA-256: canonical bytes} the records may name
        self.given = given              # the profile the caller passed (bytes), if any
        self.profile = None             # decoded profile binding the invoices
        self.profile_hash = None        # the journaled hash (None: none yet)
        self.root = None                # credit root (None: no credit yet)
        self.tree = smt.Tree()
        self.credits_known = True       # every credit since record 1 was seen
        self.originals = {}             # counter -> [type, currency, [[code, base, tax]]]
        self.closed = {}                # kind -> [kind, seq, hash, period, end, grand]
        self.figures, self.stream, self.open_known = closure.Figures(), merkle.Stream(), True
        self.inner = {"Z": [], "M": []}  # closures after the last M's (Y's) end: [(fields, hash)]
        self.inner_known = {"Z": True, "M": True}
        self.unchecked = []

    # -- profile ---------------------------------------------------------------------------------
    def _bind(self, digest, index, counter):
        if self.profile_hash is not None and digest != self.profile_hash and counter > 0:
            fail("VERIFY_PROFILE", index, "the profile changes after the first invoice")
        self.profile_hash = digest
        data = self.profiles.get(digest)
        self.profile = None if data is None else invoice.load_profile(data)

    def need_profile(self, index):
        if self.profile is None:
            fail("VERIFY_PROFILE", index, "no known profile binds this invoice (journaled hash %s): pass the "
                 "profile the journal names" % (record.hexs(self.profile_hash) if self.profile_hash else "none"))
        return self.profile

    def event(self, fields, index, counter):
        if fields[record.K_EVENT] == "profile":
            detail = fields.get(record.K_DETAIL, {})
            digest = detail.get(1)
            if not (isinstance(digest, bytes) and len(digest) == 32 and isinstance(detail.get(2), str)):
                fail("VERIFY_SCHEMA", index, "a profile event's detail is {1: 32-byte hash, 2: id}")
            self._bind(digest, index, counter)

    # -- anchors ---------------------------------------------------------------------------------
    def start_checkpoint(self, fields, index):
        if record.K_PROFILE in fields:
            self._bind(fields[record.K_PROFILE], index, 0)
        self.root = fields.get(record.K_CREDIT_ROOT)
        self.credits_known = False
        for entry in fields.get(record.K_CLOSED, ()):
            self.closed[entry[0]] = list(entry)
        self.open_known, self.inner_known = False, {"Z": False, "M": False}

    def start_closure(self, fields, h, index):
        """A segment anchored at a closure names no profile: the given one applies until a
        checkpoint or a profile event names the journaled hash."""
        self.profile = None if self.given is None else invoice.load_profile(self.given)
        self.root, self.credits_known = "unknown", False
        self.open_known, self.inner_known = False, {"Z": False, "M": False}
        self.closure(fields, index, h, True)

    # -- credits ---------------------------------------------------------------------------------
    def invoice(self, fields, index):
        itype, n = fields[record.K_INVOICE_TYPE], fields[record.K_COUNTER]
        groups = [[g[0], g[2], g[3]] for g in fields[record.K_GROUPS]]
        if itype not in KINDS:
            self.originals[n] = [itype, fields[record.K_CURRENCY], groups]
            return
        original = fields[record.K_ORIGINAL]
        if not 1 <= original < n:
            fail("VERIFY_CREDIT", index, "the credit names counter %d, not an earlier invoice" % original)
        orig = self.originals.get(original)
        if orig is None and self.credits_known:
            fail("VERIFY_CREDIT", index, "the credit names counter %d, which is no invoice of the journal" % original)
        if orig is not None:
            if orig[0] in KINDS:
                fail("VERIFY_CREDIT", index, "the credit names a %s" % orig[0])
            if orig[0] not in KINDS[itype] or orig[1] != fields[record.K_CURRENCY]:
                fail("VERIFY_CREDIT", index, "a %s in %s cannot credit a %s in %s"
                     % (itype, fields[record.K_CURRENCY], orig[0], orig[1]))
        if self.credits_known:
            done = {}
            for code, base, tax in self.tree.credited(original):
                done[code] = [base, tax]
            limit = dict([(g[0], g) for g in orig[2]])
            for code, base, tax in groups:
                cur = done.get(code, [0, 0])
                done[code] = [cur[0] + base, cur[1] + tax]
                if code not in limit or done[code][0] > limit[code][1] or done[code][1] > limit[code][2]:
                    fail("VERIFY_CREDIT", index, "group %s is credited beyond the original's amount" % code)
            self.tree.set(original, [[c, done[c][0], done[c][1]] for c in sorted(done)])
            if self.tree.root() != fields[record.K_CREDIT_ROOT]:
                fail("VERIFY_CREDIT", index, "the credit root is not the root of the credits so far")
        elif orig is not None or self.root == "unknown":
            self.unchecked.append("balance of counter %d" % original)
        self.root = fields[record.K_CREDIT_ROOT]

    def checkpoint(self, fields, index):
        if self.root != "unknown" and fields.get(record.K_CREDIT_ROOT) != self.root:
            fail("VERIFY_CREDIT", index, "the checkpoint's credit root is not the newest credit's")
        self.root = fields.get(record.K_CREDIT_ROOT)
        named = fields.get(record.K_PROFILE)
        if self.profile_hash is None and named is not None:
            self._bind(named, index, 0)
        elif named != self.profile_hash:
            fail("VERIFY_PROFILE", index, "the checkpoint's profile hash is not the journaled one")
        closed = dict([(e[0], list(e)) for e in fields.get(record.K_CLOSED, ())])
        for kind in self.closed:
            if closed.get(kind) != self.closed[kind] and self.closed[kind] is not None:
                fail("VERIFY_CLOSURE", index, "the checkpoint's %s entry differs from the newest %s closure" % (kind, kind))
        self.closed.update(closed)

    # -- closures --------------------------------------------------------------------------------
    def add(self, h, fields, rtype):
        """A record of the open period (after the checks of its own type)."""
        self.stream.add(h)
        if rtype == record.INVOICE:
            self.figures.add_invoice(fields)

    def closure(self, fields, index, h, first=False):
        kind, seq = fields[record.K_KIND], fields[record.K_SEQ]
        last = self.closed.get(kind)
        if not first:
            want = record.genesis() if last is None else last[2]
            if fields[record.K_CHAIN] != want:
                fail("VERIFY_CLOSURE", index, "the %s closure does not chain to the previous %s" % (kind, kind))
            if last is not None and (fields[record.K_PERIOD] < last[3] or (kind != "Z" and fields[record.K_PERIOD] == last[3])):
                fail("VERIFY_CLOSURE", index, "period %s comes before %s" % (fields[record.K_PERIOD], last[3]))
            if kind == "Z":
                self._check_z(fields, index, last)
            else:
                self._check_outer(fields, index, kind)
        end = fields.get(record.K_END, h)
        self.closed[kind] = [kind, seq, h, fields[record.K_PERIOD], end, closure.grand_of(fields)]
        if kind == "Z":
            self.figures, self.stream, self.open_known = closure.Figures(closure.grand_of(fields)), merkle.Stream(), True
            self.inner["Z"].append((fields, h))
        else:
            self.stream.add(h)   # an M or Y is a record of the open period: the next Z's root covers it
            inner = closure.INNER[kind]
            hashes = [x[1] for x in self.inner[inner]]
            if end in hashes:
                self.inner[inner] = self.inner[inner][hashes.index(end) + 1:]
            if kind == "M":
                self.inner["M"].append((fields, h))

    def _check_z(self, fields, index, last):
        start = 1 if last is None else last[1] + 1
        if fields[record.K_RANGE] != [start, fields[record.K_SEQ] - 1] and (last is not None or self.open_known):
            fail("VERIFY_CLOSURE", index, "the Z covers %r, not the records since the previous Z" % (fields[record.K_RANGE],))
        if not self.open_known:
            self.unchecked.append("figures of the Z at seq %d" % fields[record.K_SEQ])
            return
        want = self.figures.fields()
        for key in (record.K_FISCAL, record.K_COUNTS, record.K_FIGURES):
            if fields[key] != want[key]:
                fail("VERIFY_CLOSURE", index, "the Z's key %d is %r, the records give %r" % (key, fields[key], want[key]))
        if fields[record.K_MERKLE] != self.stream.root():
            fail("VERIFY_CLOSURE", index, "the Z's Merkle root is not the root over its period's records")

    def _check_outer(self, fields, index, kind):
        inner = closure.INNER[kind]
        if not self.inner_known[inner]:
            self.unchecked.append("sums of the %s at seq %d" % (kind, fields[record.K_SEQ]))
            return
        prefix = fields[record.K_PERIOD] + "-"
        hashes = [x[1] for x in self.inner[inner]]
        end = fields[record.K_END]
        covered = self.inner[inner][:hashes.index(end) + 1] if end in hashes else []
        previous = self.closed.get(kind)
        if not covered and end != (record.genesis() if previous is None else previous[4]):
            fail("VERIFY_CLOSURE", index, "the %s's end is no %s closure after the previous %s" % (kind, inner, kind))
        figures = closure.Figures(previous[5] if previous is not None else ())
        stream = merkle.Stream()
        rest = self.inner[inner][len(covered):]
        if rest and rest[0][0][record.K_PERIOD][:len(prefix) - 1] <= fields[record.K_PERIOD]:
            fail("VERIFY_CLOSURE", index, "the %s leaves out the %s at seq %d" % (kind, inner, rest[0][0][record.K_SEQ]))
        for f, h in covered:
            if f[record.K_PERIOD][:len(prefix)] != prefix:
                fail("VERIFY_CLOSURE", index, "the %s covers a %s of period %s" % (kind, inner, f[record.K_PERIOD]))
            figures.add_closure(f)
            stream.add(h)
        want = figures.fields()
        want[record.K_RANGE] = [covered[0][0][record.K_SEQ], covered[-1][0][record.K_SEQ]] if covered else [0, 0]
        want[record.K_MERKLE] = stream.root()
        for key in (record.K_FISCAL, record.K_COUNTS, record.K_FIGURES, record.K_RANGE, record.K_MERKLE):
            if fields[key] != want[key]:
                fail("VERIFY_CLOSURE", index, "the %s's key %d is %r, its %s closures give %r"
                     % (kind, key, fields[key], inner, want[key]))


def decode_body(rec):
    return cbor.decode(rec[:-record.SIG_LEN])
