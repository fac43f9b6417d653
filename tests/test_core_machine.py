"""The core beside a small reference model, driven by hypothesis (DESIGN-NOTES section 9).

Rules: PREPARE (valid, invalid, repeated request id), COMMIT / ABORT / STATUS of live, committed,
ended and unknown nonces, SEAL (new, replayed, consuming a PREPAREd request id, a reused id with
another invoice), STATUS by request id, ARCHIVED (the whole head, part of it, a re-send, a wrong
hash, a seq already archived), frame replay, clock moves, expiry, garbage frames, clean power
cycles and power cuts in COMMIT, SEAL and ARCHIVED, on a five-sector journal that fills up. After
every step the invariants of DESIGN-NOTES section 2 and issue 10 are checked against the journal
itself: the host's archive plus the live journal verifies with protocol.verify (chain,
signatures, counters, schema, totals), fiscal numbers are 1..c without gap or reuse, no request
id is sealed twice, every seal the model saw is still answered identically while it is live, and
no record after the archived seq was lost.
"""

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from protocol import frames, messages, record
from protocol.errors import PowerCut
from tests.devkit import T0, Bench, encode_invoice, make_invoice

MAX_PENDING = 3
TTL = 30
SECTORS = 5
RING = 32      # device/nonces.py remembers this many committed nonces

lines = st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 10 ** 6), st.sampled_from(["TG01", "TG02", "TG03", "TG04"])),
                 min_size=1, max_size=4)
# Credits need evidence of their original: tests/test_credit_machine.py drives them.
itypes = st.sampled_from(["sale", "advance", "export"])


def invoice_of(lines, itype):
    """An invoice the seed-tg profile admits: an export uses the export group."""
    if itype == "export":
        lines = [(q, p, "TG05") for q, p, _ in lines]
    return make_invoice(lines, itype)


class CoreMachine(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.bench = Bench(flash_size=SECTORS * 4096, max_pending=MAX_PENDING, nonce_ttl=TTL)
        self.pending = {}      # nonce -> (device expiry time, request id, canonical)
        self.ring = []         # committed nonces the device still remembers: [(nonce, seq)]
        self.ended = {}        # nonce -> ABORTED/EXPIRED (forgotten at power-up)
        self.sealed = {}       # request id -> sealed result (must never change)
        self.canonical = {}    # request id -> canonical invoice
        self.seen = {}         # seq -> record bytes, every record the model has read
        self.rids = 0
        self.clock_set = False
        self.now = None
        self.set_time(0)

    # -- helpers -----------------------------------------------------------------------------
    def _rid(self):
        self.rids += 1
        return record.request_id_for("machine:%d" % self.rids)

    def _power_cycle(self):
        self.bench.reboot()
        self.pending.clear()
        self.ended.clear()
        self.ring = []
        self.clock_set = False
        self.now = None

    def _expire(self):
        for nonce in [n for n in self.pending if self.pending[n][0] <= self.now]:
            del self.pending[nonce]
            self.ended[nonce] = messages.EXPIRED

    def _first_live(self):
        return self.bench.core.journal.first_live

    def _live_seq(self, sealed):
        return record.decode(sealed[record.S_RECORD] + sealed[record.S_SIGNATURE])[0][record.K_SEQ]

    def _full_plausible(self):
        """JOURNAL_FULL is a fair answer only when the invoice room is nearly gone."""
        info = self.bench.ok("INFO")
        return info["invoice_room"] < 4096 + 1100 * (len(self.pending) + 1) or info["fault"] == "JOURNAL_FULL"

    def _sealed_now(self, rid, sealed, counter_before):
        assert rid not in self.sealed
        assert sealed[record.S_COUNTER] == counter_before + 1
        self.sealed[rid] = sealed

    def _commit_seq(self, nonce, seq):
        self.ring.append((nonce, seq))
        self.ring = self.ring[-RING:]

    def _nonce_choices(self, data):
        pool = list(self.pending) + [n for n, _ in self.ring] + list(self.ended) + [b"\x07" * 16]
        return data.draw(st.sampled_from(pool))

    def _ring_seq(self, nonce):
        for n, seq in self.ring:
            if n == nonce and seq >= self._first_live():
                return seq
        return None

    def _sealed_by_seq(self, seq):
        for sealed in self.sealed.values():
            if sealed[record.S_COUNTER] and self._live_seq(sealed) == seq:
                return sealed
        raise AssertionError("no sealed result at seq %d" % seq)

    # -- rules: clock ----------------------------------------------------------------------------
    @rule(delta=st.integers(-100, 400))
    def set_time(self, delta):
        last = self.bench.core.last_time
        t = max(T0, last) + delta if delta >= 0 or self.now is None else self.now + delta
        status, answer = self.bench.call("SET_TIME", time=t)
        if t < last:
            assert status == "CLOCK_BACKWARDS"
            return
        if status == "JOURNAL_FULL":
            assert self._full_plausible()
            return
        assert status == "OK", (status, answer)
        self.clock_set, self.now = True, t
        self._expire()

    @precondition(lambda self: self.clock_set)
    @rule(seconds=st.integers(0, 60))
    def advance(self, seconds):
        self.bench.clock.advance(seconds)
        self.now += seconds
        self._expire()

    # -- rules: two-phase ------------------------------------------------------------------------
    @rule(lines=lines, itype=itypes)
    def prepare(self, lines, itype):
        self._prepare(encode_invoice(invoice_of(lines, itype)), self._rid())

    def _prepare(self, canonical, rid):
        counter = self.bench.core.counter
        status, answer = self.bench.prepare(canonical, rid)
        if not self.clock_set:
            assert status in ("CLOCK_UNSET", "JOURNAL_FULL")
        elif len(self.pending) >= MAX_PENDING:
            assert status == "TOO_MANY_PENDING"
        elif status == "JOURNAL_FULL":
            assert self._full_plausible()
        else:
            assert status == "OK", answer
            assert answer["nonce"] not in self.pending and answer["expires"] == self.now + TTL
            self.pending[answer["nonce"]] = (answer["expires"], rid, canonical)
            self.canonical[rid] = canonical
            return answer["nonce"]
        assert counter == self.bench.core.counter and set(self.bench.core.nonces.pending) == set(self.pending)
        return None

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def prepare_same_request_again(self, data):
        nonce = data.draw(st.sampled_from(sorted(self.pending)))
        expires, rid, canonical = self.pending[nonce]
        answer = self.bench.ok("PREPARE", total=len(canonical), offset=0, data=canonical, request_id=rid)
        assert answer["nonce"] == nonce and answer["expires"] == expires

    @rule(lines=lines, bump=st.integers(1, 3))
    def prepare_invalid(self, lines, bump):
        doc = make_invoice(lines)
        doc[10][3] += bump   # total no longer follows from the tax lines
        counter = self.bench.core.counter
        status, _ = self.bench.prepare(encode_invoice(doc), self._rid())
        if not self.clock_set:
            assert status in ("CLOCK_UNSET", "JOURNAL_FULL")
        elif len(self.pending) >= MAX_PENDING:
            assert status == "TOO_MANY_PENDING"
        else:
            assert status == "TOTALS_MISMATCH" or (status == "JOURNAL_FULL" and self._full_plausible())
        assert counter == self.bench.core.counter
        assert set(self.bench.core.nonces.pending) == set(self.pending)

    @rule(data=st.data())
    def commit(self, data):
        self._commit(self._nonce_choices(data))

    def _commit(self, nonce):
        c = self.bench.core.counter
        status, answer = self.bench.call("COMMIT", nonce=nonce)
        seq = self._ring_seq(nonce)
        event("commit of a %s nonce" % ("committed" if seq else "pending" if nonce in self.pending
                                          else "ended" if nonce in self.ended else "unknown"))
        if seq is not None:
            assert status == "OK" and answer["replayed"] and answer["sealed"] == self._sealed_by_seq(seq)
        elif nonce in self.pending:
            if status == "JOURNAL_FULL":
                assert self._full_plausible() and self.bench.core.counter == c
                return
            assert status == "OK" and not answer["replayed"], (status, answer)
            rid = self.pending.pop(nonce)[1]
            self._sealed_now(rid, answer["sealed"], c)
            self._commit_seq(nonce, self._live_seq(answer["sealed"]))
        elif nonce in self.ended:
            assert status == {messages.ABORTED: "NONCE_ABORTED", messages.EXPIRED: "NONCE_EXPIRED"}[self.ended[nonce]]
        else:
            assert status == "NONCE_UNKNOWN"

    @rule(data=st.data())
    def abort(self, data):
        nonce = self._nonce_choices(data)
        status, answer = self.bench.call("ABORT", nonce=nonce)
        if nonce in self.pending:
            assert answer == {"state": messages.ABORTED}
            del self.pending[nonce]
            self.ended[nonce] = messages.ABORTED
        elif nonce in self.ended:
            assert answer == {"state": self.ended[nonce]}
        elif self._ring_seq(nonce) is not None:
            assert status == "NONCE_COMMITTED"
        else:
            assert status == "NONCE_UNKNOWN"

    @rule(data=st.data())
    def status(self, data):
        nonce = self._nonce_choices(data)
        answer = self.bench.ok("STATUS", nonce=nonce)
        seq = self._ring_seq(nonce)
        if nonce in self.pending:
            assert answer == {"state": messages.PREPARED, "expires": self.pending[nonce][0]}
        elif seq is not None:
            assert answer == {"state": messages.COMMITTED, "sealed": self._sealed_by_seq(seq)}
        elif nonce in self.ended:
            assert answer == {"state": self.ended[nonce]}
        else:
            assert answer == {"state": messages.UNKNOWN}

    # -- rules: one call, request ids -----------------------------------------------------------------
    @precondition(lambda self: self.clock_set)
    @rule(lines=lines, itype=itypes)
    def seal(self, lines, itype):
        self._seal(encode_invoice(invoice_of(lines, itype)), self._rid())

    def _seal(self, canonical, rid):
        c = self.bench.core.counter
        status, answer = self.bench.seal(canonical, rid)
        if status == "JOURNAL_FULL":
            assert self._full_plausible() and self.bench.core.counter == c
            return
        if not self.clock_set:
            assert status == "CLOCK_UNSET"
            return
        assert status == "OK", (status, answer)
        assert not answer["replayed"]
        self.canonical[rid] = canonical
        self._sealed_now(rid, answer["sealed"], c)

    @precondition(lambda self: self.clock_set)
    @rule()
    def seal_until_full(self):
        for _ in range(40):
            before = len(self.sealed)
            self._seal(encode_invoice(make_invoice(((1000, 100, "TG02"),))), self._rid())
            if len(self.sealed) == before:
                return

    @precondition(lambda self: self.sealed)
    @rule(data=st.data())
    def seal_again(self, data):
        """The POS retries a sealed request: the device answers its seal, or unknown once archived."""
        rid = data.draw(st.sampled_from(sorted(self.sealed)))
        seq = self._live_seq(self.sealed[rid])
        answer = self.bench.ok("STATUS", request_id=rid)
        if seq < self._first_live():
            assert answer == {"state": messages.UNKNOWN}   # the host's archive dedupes it
            return
        assert answer == {"state": messages.COMMITTED, "sealed": self.sealed[rid]}
        counter = self.bench.core.counter
        canonical = self.canonical[rid]
        again = self.bench.ok("SEAL", request_id=rid, total=len(canonical), offset=0, data=canonical)
        assert again == {"received": len(canonical), "sealed": self.sealed[rid], "replayed": True}
        twice = self.bench.ok("PREPARE", request_id=rid, total=len(canonical), offset=0, data=canonical)
        assert twice == {"received": len(canonical), "sealed": self.sealed[rid], "replayed": True}
        other = encode_invoice(make_invoice(((1000, 1, "TG01"),)))
        assert self.bench.call("SEAL", request_id=rid, total=len(other), offset=0, data=other)[0] == "REQUEST_ID_REUSED"
        assert self.bench.core.counter == counter

    @precondition(lambda self: self.pending and self.clock_set)
    @rule(data=st.data())
    def seal_a_prepared_request(self, data):
        nonce = data.draw(st.sampled_from(sorted(self.pending)))
        expires, rid, canonical = self.pending[nonce]
        c = self.bench.core.counter
        status, answer = self.bench.seal(canonical, rid)
        if status == "JOURNAL_FULL":
            assert self._full_plausible()
            return
        assert status == "OK" and not answer["replayed"], (status, answer)
        del self.pending[nonce]
        self._sealed_now(rid, answer["sealed"], c)
        self._commit_seq(nonce, self._live_seq(answer["sealed"]))

    @rule(data=st.data())
    def status_by_request_id(self, data):
        pool = sorted(self.sealed) + [self.pending[n][1] for n in sorted(self.pending)] + [b"\x09" * 16]
        rid = data.draw(st.sampled_from(pool))
        answer = self.bench.ok("STATUS", request_id=rid)
        pending = [n for n in self.pending if self.pending[n][1] == rid]
        if rid in self.sealed and self._live_seq(self.sealed[rid]) >= self._first_live():
            assert answer == {"state": messages.COMMITTED, "sealed": self.sealed[rid]}
        elif pending:
            assert answer == {"state": messages.PREPARED, "nonce": pending[0], "expires": self.pending[pending[0]][0]}
        else:
            assert answer == {"state": messages.UNKNOWN}

    # -- rules: closing and archiving ---------------------------------------------------------------
    def _last_z(self):
        return self.bench.core.journal.closed.get("Z", 0)

    @rule()
    def close_day(self):
        j = self.bench.core.journal
        before, c = j.last_seq, self.bench.core.counter
        status, answer = self.bench.close_z(self.bench.z_period())
        if status == "JOURNAL_FULL":
            assert self._full_plausible() and j.last_seq == before
            return
        assert status == "OK", (status, answer)
        assert answer["seq"] == before + 1 == self._last_z() and self.bench.core.counter == c

    @rule()
    def archive_the_open_period_is_refused(self):
        j = self.bench.core.journal
        if j.last_seq <= self._last_z():
            return
        image = self.bench.flash.image()
        assert self.bench.call("ARCHIVED", seq=j.last_seq, hash=j.head_hash)[0] == "ARCHIVE_OPEN_PERIOD"
        assert self.bench.flash.image() == image

    @rule(data=st.data())
    def archive(self, data):
        j = self.bench.core.journal
        if self._last_z() < j.first_live:
            return
        s = data.draw(st.integers(j.first_live, self._last_z()))
        fault, erased, oldest = self.bench.core.fault, j.erased_count(), j.run[0][2]
        status, answer = self.bench.archive_call(s, close=False)
        if status == "JOURNAL_FULL":
            assert erased == 0 and s < oldest      # a checkpoint that would free nothing
            return
        assert status == "OK" and answer["first_live"] == s + 1 and self.bench.core.journal.run[0][2] > s
        if fault == "JOURNAL_FULL" and self.bench.core.fault == "":
            event("a full device came back by ARCHIVED")

    @precondition(lambda self: self.bench.core.journal.archived is not None)
    @rule()
    def archive_resent_or_wrong(self):
        j = self.bench.core.journal
        s, h = j.archived
        image = self.bench.flash.image()
        answer = self.bench.ok("ARCHIVED", seq=s, hash=h)
        assert answer["erased_sectors"] == 0 and self.bench.flash.image() == image
        if self._last_z() >= j.first_live:
            assert self.bench.call("ARCHIVED", seq=self._last_z(), hash=b"\x00" * 32)[0] == "ARCHIVE_HASH_MISMATCH"
        if j.last_seq > self._last_z():
            assert self.bench.call("ARCHIVED", seq=j.last_seq, hash=j.head_hash)[0] == "ARCHIVE_OPEN_PERIOD"
        assert self.bench.call("ARCHIVED", seq=s, hash=b"\x00" * 32)[0] == "ARCHIVE_RANGE"
        assert self.bench.call("ARCHIVED", seq=j.last_seq + 1, hash=h)[0] == "ARCHIVE_RANGE"
        assert self.bench.flash.image() == image

    # -- rules: the link, power -------------------------------------------------------------------
    @rule(seq=st.integers(0, 255))
    def replayed_frame(self, seq):
        frame = frames.encode_frame(seq, messages.encode_request("INFO"))
        first = self.bench.link.feed(frame)
        records = self.bench.core.seq
        assert self.bench.link.feed(frame) == first
        assert self.bench.core.seq == records

    @rule(garbage=st.binary(max_size=64))
    def garbage_frame(self, garbage):
        before = (self.bench.core.seq, len(self.bench.core.nonces.pending))
        out = self.bench.link.feed(garbage + frames.encode_frame(1, b"\xff")[:-1] + b"\x00")
        for kind, _, item in frames.FrameDecoder().feed(out):
            assert kind == "frame"
            assert messages.decode_response(item)[1] != messages.OK
        self.bench.link.decoder = frames.FrameDecoder()   # the host resynchronises the same way
        assert before == (self.bench.core.seq, len(self.bench.core.nonces.pending))

    @rule(clock=st.booleans())
    def power_cycle(self, clock):
        self._power_cycle()
        if clock:
            self.set_time(1)

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), k=st.integers(0, 3), land=st.integers(0, 300))
    def power_cut_in_commit(self, data, k, land):
        nonce = data.draw(st.sampled_from(sorted(self.pending)))
        rid = self.pending[nonce][1]
        c = self.bench.core.counter
        self.bench.flash.cut_after = self.bench.flash.programs + k
        self.bench.flash.cut_bytes = land
        try:
            status, answer = self.bench.call("COMMIT", nonce=nonce)
            if status == "OK":
                self._sealed_now(rid, answer["sealed"], c)
        except PowerCut:
            pass
        self._power_cycle()
        counter = self.bench.core.counter
        assert counter in (c, c + 1)
        answer = self.bench.ok("STATUS", request_id=rid)
        if counter == c + 1 and rid not in self.sealed:
            # Sealed before the power dropped: STATUS by request id reveals it.
            assert answer["state"] == messages.COMMITTED
            self._sealed_now(rid, answer["sealed"], c)
        elif rid not in self.sealed:
            assert answer == {"state": messages.UNKNOWN}

    @precondition(lambda self: self.bench.core.journal.closed.get("Z", 0) >= self.bench.core.journal.first_live)
    @rule(data=st.data(), erase=st.booleans(), k=st.integers(0, 3), land=st.integers(0, 4096))
    def power_cut_in_archive(self, data, erase, k, land):
        j = self.bench.core.journal
        s = data.draw(st.integers(j.first_live, self._last_z()))
        h = j.chain(s)[1]
        c, first = self.bench.core.counter, j.first_live
        live = self.bench.records()
        self.bench.archive = self.bench.history()[:s]
        f = self.bench.flash
        if erase:
            f.cut_erase_after, f.erase_cut_bytes, f.erase_garbage = f.erases + k, land, data.draw(st.sampled_from([None, 0, 0x5A]))
        else:
            f.cut_after, f.cut_bytes = f.programs + k, land % 300
        try:
            self.bench.call("ARCHIVED", seq=s, hash=h)
        except PowerCut:
            pass
        self._power_cycle()
        assert self.bench.core.counter == c
        assert self.bench.history()[first - 1:first - 1 + len(live)] == live   # nothing after S is lost

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def nonces_agree_with_the_model(self):
        assert len(self.bench.core.nonces.pending) <= MAX_PENDING
        if self.clock_set:
            self.bench.core.nonces.expire(self.bench.core.clock.now())
            assert set(self.bench.core.nonces.pending) == set(self.pending)

    @invariant()
    def journal_proves_the_counter(self):
        j = self.bench.core.journal
        state = (len(self.bench.archive), j.last_seq, j.head_hash, j.first_live, len(self.sealed))
        if state == getattr(self, "_verified", None):
            return                                   # the journal did not change since the last check
        self._verified = state
        history = self.bench.history()
        summary = self.bench.verify(history)     # raises on any broken rule, duplicated request id included
        assert summary["counter"] == self.bench.core.counter == len(self.sealed)
        assert summary["last_seq"] == self.bench.core.seq
        counters = sorted(s[record.S_COUNTER] for s in self.sealed.values())
        assert counters == list(range(1, len(counters) + 1))
        for seq, rec in self.seen.items():
            assert history[seq - 1] == rec       # no record ever changes or disappears from the history
        for i, rec in enumerate(history):
            self.seen[i + 1] = rec


TestCoreMachine = CoreMachine.TestCase
TestCoreMachine.settings = settings(max_examples=200, stateful_step_count=50, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow])
