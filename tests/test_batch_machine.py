"""SEAL_BATCH beside a small reference model, driven by hypothesis (issue 15, DESIGN-NOTES section 9).

Rules: batches of 1..6 entries mixing new invoices, request ids sealed before (replayed), sealed
ids with another invoice (REQUEST_ID_REUSED), an id twice in one batch, PREPAREd ids (the batch
consumes their nonce), malformed invoices and credit notes (BATCH_CREDIT); a batch can be cut by
a power cut at any of its programs or at its one sync. Beside them single SEALs, PREPAREs, clock
moves and clean power cycles (the clock unset afterwards: new entries CLOCK_UNSET).

The model predicts every entry's result. After a cut it requires that the new entries sealed are
a prefix of the new entries the batch would have sealed, that every other entry is unknown to
STATUS, and then takes the device's seals for those. After every step: the journal verifies
(chain, signatures, schema, no request id twice), fiscal numbers are 1..c without gap, every seal
the model saw is still answered identically by STATUS, and one batch wrote one sync.
"""

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from protocol import batch, messages, record
from protocol.error_table import ERRORS
from protocol.errors import PowerCut, code_of
from tests.devkit import T0, Bench, encode_invoice, make_invoice

INVOICE_CODES = set(code for code, (name, family, _) in ERRORS.items() if family == "invoice")
lines = st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 10 ** 6), st.sampled_from(["TG01", "TG02", "TG03"])),
                 min_size=1, max_size=3)
new = st.tuples(st.just("new"), lines)
entry = st.one_of(new, new, new, st.tuples(st.just("again"), st.integers(0, 10 ** 6)),
                  st.tuples(st.just("reused"), st.integers(0, 10 ** 6)), st.tuples(st.just("dup"), st.integers(0, 5)),
                  st.tuples(st.just("prepared"), st.integers(0, 10 ** 6)), st.just(("bad",)), st.just(("credit",)))
cuts = st.one_of(st.none(), st.just("sync"), st.tuples(st.integers(0, 12), st.integers(0, 300)))


class BatchMachine(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.bench = Bench(flash_size=32 * 4096, nonce_ttl=10 ** 6)
        self.sealed = {}       # request id -> (canonical, sealed result)
        self.pending = {}      # request id -> (canonical, nonce)
        self.n = 0
        self.clock_set = False
        self.bench.ok("SET_TIME", time=T0)
        self.clock_set = True

    def _rid(self):
        self.n += 1
        return record.request_id_for("1p:batch-machine:%d" % self.n)

    def _pick(self, pool, i):
        return pool[i % len(pool)] if pool else None

    def _room(self):
        return self.bench.ok("INFO")["invoice_room"]

    # -- rules -----------------------------------------------------------------------------------
    @rule(seconds=st.integers(0, 60))
    def advance(self, seconds):
        self.bench.clock.advance(seconds)

    @rule(clock=st.booleans())
    def power_cycle(self, clock):
        """A clean power cycle; the host sets the clock again at connect, or not yet."""
        self.bench.reboot()
        self.pending.clear()
        self.clock_set = False
        if clock:
            self.set_clock()

    @precondition(lambda self: not self.clock_set)
    @rule()
    def set_clock(self):
        """SET_TIME after a power-up (never behind the last record)."""
        t = max(T0, self.bench.core.last_time)
        self.bench.ok("SET_TIME", time=t)
        self.clock_set = True

    @precondition(lambda self: self.clock_set and len(self.pending) < 8)
    @rule(lines=lines)
    def prepare(self, lines):
        rid, canonical = self._rid(), encode_invoice(make_invoice(lines))
        status, answer = self.bench.prepare(canonical, rid)
        if status == "JOURNAL_FULL":
            return
        assert status == "OK", (status, answer)
        self.pending[rid] = (canonical, answer["nonce"])

    @precondition(lambda self: self.clock_set)
    @rule(lines=lines)
    def single_seal(self, lines):
        rid, canonical = self._rid(), encode_invoice(make_invoice(lines))
        c = self.bench.core.counter
        status, answer = self.bench.seal(canonical, rid)
        if status == "JOURNAL_FULL":
            assert self._room() < 8192
            return
        assert status == "OK" and answer["sealed"][record.S_COUNTER] == c + 1
        self.sealed[rid] = (canonical, answer["sealed"])

    @rule(spec=st.lists(entry, min_size=1, max_size=6), cut=cuts)
    def seal_batch(self, spec, cut):
        entries, expect = self._entries(spec)
        doc = batch.encode(entries)
        c, syncs, room = self.bench.core.counter, self.bench.flash.syncs, self._room()
        flash = self.bench.flash
        if cut == "sync":
            flash.cut_sync_after = flash.syncs
        elif cut is not None:
            flash.cut_after, flash.cut_bytes, flash.cut_mask = flash.programs + cut[0], cut[1], 0x0F
        try:
            status, answer = self.bench.call("SEAL_BATCH", total=len(doc), offset=0, data=doc)
        except PowerCut:
            self._after_cut(entries, expect, c)
            return
        event("batch answered: %d new of %d" % (expect.count("new"), len(expect)))
        flash.revive()       # a cut past the batch's last program never fired
        assert status == "OK", (status, answer)
        written = answer["last"] - answer["first"] + 1
        assert self.bench.flash.syncs == syncs + (1 if written else 0)
        for i, ((rid, canonical), want, got) in enumerate(zip(entries, expect, answer["results"])):
            if want == "new":
                if got[0] == code_of("JOURNAL_FULL"):
                    assert room < 8192
                    continue
                assert got[:1] == [0] and got[2] is False, (i, got)
                c += 1
                state = self.bench.ok("STATUS", request_id=rid)
                assert state["sealed"][record.S_COUNTER] == c and got[1] == self._seq(state["sealed"])
                self.sealed[rid] = (canonical, state["sealed"])
                if rid in self.pending:
                    nonce = self.pending.pop(rid)[1]
                    assert self.bench.ok("STATUS", nonce=nonce)["state"] == messages.COMMITTED
            elif want == "replay" or (want == "fresh-replay" and rid in self.sealed):
                assert got == [0, self._seq(self.sealed[rid][1]), True], (i, got)
            elif want == "fresh-replay":      # the entry it repeats found the journal full
                assert got[0] == code_of("JOURNAL_FULL"), (i, got)
            elif want == "invoice":
                assert got[0] in INVOICE_CODES, got
            else:
                assert got[0] == code_of(want), (i, want, got)
        assert self.bench.core.counter == c

    def _entries(self, spec):
        """(entries, the result the model expects for each: new, replay, fresh-replay (of a new
        entry earlier in the batch), invoice (an invoice-family refusal) or an error name)."""
        entries, expect = [], []
        sealed = sorted(self.sealed)
        fresh = {}             # request id -> canonical of new entries earlier in this batch
        for item in spec:
            kind = item[0]
            if kind == "dup" and entries:
                j = item[1] % len(entries)
                entries.append(entries[j])
                expect.append("fresh-replay" if expect[j] in ("new", "fresh-replay") else expect[j])
                continue
            if kind == "again" and sealed:
                rid = self._pick(sealed, item[1])
                canonical = self.sealed[rid][0]
            elif kind == "reused" and sealed:
                rid = self._pick(sealed, item[1])
                canonical = encode_invoice(make_invoice(((7, 7, "TG02"),)))
                if canonical == self.sealed[rid][0]:
                    canonical = encode_invoice(make_invoice(((8, 8, "TG02"),)))
            elif kind == "prepared" and self.pending:
                rid = self._pick(sorted(self.pending), item[1])
                canonical = self.pending[rid][0]
            elif kind == "bad":
                rid, canonical = self._rid(), encode_invoice(make_invoice(payments=[1]))
            elif kind == "credit" and sealed:
                number = self.sealed[sealed[0]][1][record.S_FISCAL_NUMBER]
                rid, canonical = self._rid(), encode_invoice(make_invoice(itype="credit_note", credit=number))
            elif kind == "new":
                rid, canonical = self._rid(), encode_invoice(make_invoice(item[1]))
            else:
                rid, canonical = self._rid(), encode_invoice(make_invoice(((1 + len(entries), 100, "TG03"),)))
            if kind == "bad":
                want = "invoice"
            elif kind == "credit" and sealed:
                want = "BATCH_CREDIT"
            elif rid in self.sealed:
                want = "replay" if self.sealed[rid][0] == canonical else "REQUEST_ID_REUSED"
            elif rid in fresh:
                want = "fresh-replay" if fresh[rid] == canonical else "REQUEST_ID_REUSED"
            elif not self.clock_set:
                want = "CLOCK_UNSET"
            else:
                want = "new"
                fresh[rid] = canonical
            entries.append((rid, canonical))
            expect.append(want)
        return entries, expect

    def _after_cut(self, entries, expect, c):
        self.bench.reboot()
        self.pending.clear()
        self.clock_set = False
        new = [entries[i][0] for i in range(len(entries)) if expect[i] == "new"]
        done = [self.bench.ok("STATUS", request_id=rid)["state"] == messages.COMMITTED for rid in new]
        m = done.count(True)
        event("batch cut: %d of %d new entries sealed" % (m, len(new)))
        assert done == [True] * m + [False] * (len(new) - m), done     # a prefix of the new entries
        assert self.bench.core.counter == c + m
        for i in range(m):
            state = self.bench.ok("STATUS", request_id=new[i])
            assert state["sealed"][record.S_COUNTER] == c + 1 + i
            self.sealed[new[i]] = (dict(entries)[new[i]], state["sealed"])
        self.set_clock()                # the host reconnects: handshake, SET_TIME, then STATUS

    def _seq(self, sealed):
        return record.decode(sealed[record.S_RECORD] + sealed[record.S_SIGNATURE])[0][record.K_SEQ]

    # -- invariants --------------------------------------------------------------------------------
    @invariant()
    def journal_proves_the_counter(self):
        j = self.bench.core.journal
        state = (j.last_seq, j.head_hash, len(self.sealed))
        if state == getattr(self, "_verified", None):
            return
        self._verified = state
        summary = self.bench.verify()
        assert summary["counter"] == self.bench.core.counter == len(self.sealed)
        counters = sorted(s[record.S_COUNTER] for _, s in self.sealed.values())
        assert counters == list(range(1, len(counters) + 1))
        for rid in self.sealed:
            assert self.bench.ok("STATUS", request_id=rid)["sealed"] == self.sealed[rid][1]


TestBatchMachine = BatchMachine.TestCase
TestBatchMachine.settings = settings(max_examples=80, stateful_step_count=30, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
