"""Test kit: an in-memory device that can be power-cycled, and a builder of valid invoices.

``Bench`` wraps the real Core and Link on the real NOR-flash model; ``reboot()`` is a power cycle
(RAM state gone, flash kept exactly as left, faults cleared). Signatures in the journal are
checked with the host's ``cryptography``-backed verifier for speed; tests/test_p256.py and
tests/test_verify_cli.py prove it agrees with the pure-Python one.
"""

import hashlib

from device.core import Core
from device.flash import Flash
from device.link import Link
from device.ports import ManualClock, SeededEntropy, StaticKeystore, device_id_for
from device.signer import Signer, derive_secret
from hostd.books.keys import fast_verifier
from protocol import cbor, invoice, messages, profile_host, record, smt, verify

T0 = 1771300800  # 2026-02-17T04:00:00Z
DAY = "2026-02-17"
SEED_TG = profile_host.load_bytes("seed-tg")


def keystore(seed="test-key"):
    secret = derive_secret(SeededEntropy(seed).random(32))
    return StaticKeystore(secret, device_id_for(Signer(secret).public_key(), "TST"))


class Bench:
    def __init__(self, flash_size=64 * 1024, seed=0, max_pending=10, nonce_ttl=120, image=None, boot=True,
                 profile=SEED_TG):
        self.flash = Flash(flash_size, data=image)
        self.clock = ManualClock()
        self.keys = keystore()
        self.seed = seed
        self.kw = {"max_pending": max_pending, "nonce_ttl": nonce_ttl}
        self.boots = 0
        self.requests = 0
        self.archive = []      # records read out and acknowledged with ARCHIVED, as a host keeps them
        self.public_key = Signer(self.keys.secret()).public_key()
        fast, memo = fast_verifier(self.public_key), {}

        def verify_sig(message, sig):   # the same record is verified again after every step
            key = message + sig
            if key not in memo:
                memo[key] = fast(message, sig)
            return memo[key]
        self._verify_sig = verify_sig
        self.profile = profile
        if profile is not None and image is not None:
            self.keys.store_profile(profile)   # the device this image came from had it installed
        if boot:
            self.boot()
            if profile is not None and image is None:
                self.ok("PROFILE", data=profile)   # what a new emulator profile or `board provision` does

    def boot(self, revive=True):
        """Power-up from the flash as it is; ``revive=False`` keeps armed faults (a cut power-up)."""
        if revive:
            self.flash.revive()
        self.boots += 1
        entropy = SeededEntropy("%s:%d" % (self.seed, self.boots))
        self.core = Core(self.flash, self.clock, entropy, self.keys, **self.kw)
        self.link = Link(self.core)

    reboot = boot

    def call(self, name, **fields):
        """(status name or 'OK', fields) for one request through the core."""
        got, status, detail, answer = messages.decode_response(self.core.handle(messages.encode_request(name, **fields)))
        if status:
            from protocol.errors import name_of
            return name_of(status), detail
        return "OK", answer

    def ok(self, name, **fields):
        status, answer = self.call(name, **fields)
        assert status == "OK", (name, status, answer)
        return answer

    def request_id(self):
        """A fresh request id, as a host derives one per POS request."""
        self.requests += 1
        return record.request_id_for("bench:%d" % self.requests)

    def prepare(self, canonical, request_id=None):
        rid = self.request_id() if request_id is None else request_id
        return self.call("PREPARE", total=len(canonical), offset=0, data=canonical, request_id=rid)

    def seal(self, canonical, request_id=None):
        """SEAL in one frame: (status, answer)."""
        rid = self.request_id() if request_id is None else request_id
        return self.call("SEAL", request_id=rid, total=len(canonical), offset=0, data=canonical)

    def records(self):
        """The live records (first_live to the head)."""
        return [payload for _, payload in self.core.journal.records(self.core.journal.first_live)]

    def archive_upto(self, seq=None):
        """Read out the live records up to ``seq`` (default: the head), keep them, send ARCHIVED."""
        status, answer = self.archive_call(seq)
        assert status == "OK", (status, answer)
        return answer

    def archive_call(self, seq=None, close=True):
        """archive_upto's (status, answer); the archive keeps records 1..n in order. ARCHIVED never
        erases the open period, so with ``close`` a Z closes it first when ``seq`` (default: the
        head, then the Z itself) lies after the last Z."""
        j = self.core.journal
        if close and (seq is None or seq > j.closed.get("Z", 0)) and j.last_seq > j.closed.get("Z", 0):
            status, answer = self.close_z(self.z_period())
            if status != "OK":
                return status, answer
        seq = j.last_seq if seq is None else seq
        have = len(self.archive)
        if seq > have:
            self.archive.extend([p for _, p in j.records(have + 1)][:seq - have])
        prev = record.genesis()
        for rec in self.archive[:seq]:
            prev = record.record_hash(prev, rec)
        return self.call("ARCHIVED", seq=seq, hash=prev)

    def history(self):
        """Archive plus the live records after it: the whole journal from record 1."""
        return self.archive + [p for s, p in self.core.journal.records(len(self.archive) + 1)]

    def verify(self, records=None):
        return verify.verify_records(self.history() if records is None else records, self.public_key,
                                     self._verify_sig, profile=self.profile)

    def books(self):
        """What a host keeps for credits, rebuilt from the whole history: {counter: (record, prev)}
        of every invoice and the credit tree (protocol/smt.py)."""
        found, tree, prev = {}, smt.Tree(), record.genesis()
        for rec in self.history():
            fields = record.decode(rec)[0]
            if fields[record.K_TYPE] == record.INVOICE:
                found[fields[record.K_COUNTER]] = (rec, prev)
                if record.K_ORIGINAL in fields:
                    done = dict((c, [b, t]) for c, b, t in tree.credited(fields[record.K_ORIGINAL]))
                    for code, _, base, tax in fields[record.K_GROUPS]:
                        cur = done.get(code, [0, 0])
                        done[code] = [cur[0] + base, cur[1] + tax]
                    tree.set(fields[record.K_ORIGINAL], [[c] + done[c] for c in sorted(done)])
            prev = record.record_hash(prev, rec)
        return found, tree

    def evidence_call(self, counter):
        """EVIDENCE for the invoice with fiscal counter ``counter``, from the host's books."""
        found, tree = self.books()
        rec, prev = found[counter]
        return self.call("EVIDENCE", record=rec, prev=prev, credited=tree.credited(counter), proof=tree.proof(counter))

    def credit(self, counter, lines=None, itype="credit_note", evidence=True, **kw):
        """SEAL a credit of the invoice ``counter`` (EVIDENCE first): (status, answer). ``lines``
        default to the original's groups in full (a void)."""
        found, _ = self.books()
        orig = record.decode(found[counter][0])[0]
        if lines is None:
            lines = [(1000, g[2], g[0]) for g in orig[record.K_GROUPS]]
        if evidence:
            status, answer = self.evidence_call(counter)
            if status != "OK":
                return status, answer
        doc = make_invoice(lines, itype, currency=orig[record.K_CURRENCY],
                           credit=record.fiscal_number(orig[record.K_DEVICE], counter), **kw)
        return self.seal(encode_invoice(doc))

    def z_period(self):
        """The day of the device clock (or of the last record), not before the last Z's."""
        from protocol import timefmt
        day = timefmt.format_time(self.core._time_or_last())[:10]
        return max(day, DAY)

    def close_z(self, period=DAY):
        """CLOSE Z of ``period``: (status, answer)."""
        return self.call("CLOSE", kind="Z", period=period, offset=0, records=[], last=True)


def make_invoice(lines=((2000, 50000, "TG03"),), itype="sale", currency="CDF", timestamp="2026-02-17T04:00:00Z",
                 classification="Company", payments=None, credit=None, reason=""):
    """A valid canonical invoice map; ``lines`` are (quantity in thousandths, unit price, group).
    A credit type gets key 12 naming ``credit`` (the original's fiscal number)."""
    items = [{1: "SKU-%d" % i, 2: "item %d" % i, 3: q, 4: p, 5: g, 6: "EA"} for i, (q, p, g) in enumerate(lines)]
    groups = invoice.compute_groups(items, timestamp)
    tax_lines = [{1: code, 2: "", 3: rate, 4: base, 5: tax} for code, rate, base, tax in groups]
    subtotal = sum(g[2] for g in groups)
    vat = sum(g[3] for g in groups)
    total = subtotal + vat
    pays = payments if payments is not None else [total]
    doc = {1: "308123456", 2: "outlet-kin001", 3: "POS-07", 4: "cashier-13", 5: itype, 6: timestamp,
           7: {1: "Acme Ltd", 2: "123456789", 3: classification}, 8: items, 9: tax_lines,
           10: {1: subtotal, 2: vat, 3: total, 4: currency},
           11: [{1: "cash", 2: amount, 3: "", 4: currency} for amount in pays]}
    if itype in invoice.CREDIT_TYPES:
        doc[12] = {1: credit or "NONE-00000000", 2: reason}
    return doc


def encode_invoice(doc):
    return cbor.encode(doc)


def digest(data):
    return hashlib.sha256(data).digest()
