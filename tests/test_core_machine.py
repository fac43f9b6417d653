"""The core beside a small reference model, driven by hypothesis (DESIGN-NOTES section 9).

Rules: PREPARE (valid and invalid), COMMIT / ABORT / STATUS of live, committed, ended and unknown
nonces, frame replay, clock moves (forward, backward, past the last record), expiry, garbage
frames, clean power cycles and power cuts in the middle of a COMMIT. After every step the
invariants of DESIGN-NOTES section 2 are checked against the journal itself: it verifies (chain,
signatures, counters, time, running totals), fiscal numbers are 1..c without gap or reuse, no nonce
is sealed twice, and every nonce the model saw committed still answers with its original seal.
"""

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from protocol import frames, messages, record
from protocol.errors import PowerCut
from tests.devkit import T0, Bench, encode_invoice, make_invoice

MAX_PENDING = 3
TTL = 30

lines = st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 10 ** 6), st.sampled_from(["TG01", "TG02", "TG03", "TG04"])),
                 min_size=1, max_size=4)
itypes = st.sampled_from(["sale", "advance", "credit_note", "export", "export_credit"])


class _Fixed:
    """Stands in for st.data() when a rule calls another rule with a chosen nonce."""

    def __init__(self, value):
        self.value = value


class CoreMachine(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.bench = Bench(max_pending=MAX_PENDING, nonce_ttl=TTL)
        self.pending = {}      # nonce -> device expiry time
        self.committed = {}    # nonce -> sealed result (must never change)
        self.ended = {}        # nonce -> ABORTED/EXPIRED (forgotten at power-up)
        self.clock_set = False
        self.now = None
        self.set_time(0)

    # -- helpers -----------------------------------------------------------------------------
    def _power_cycle(self):
        self.bench.reboot()
        self.pending.clear()
        self.ended.clear()
        self.clock_set = False
        self.now = None

    def _expire(self):
        for nonce in [n for n in self.pending if self.pending[n] <= self.now]:
            del self.pending[nonce]
            self.ended[nonce] = messages.EXPIRED

    def _nonce_choices(self, data):
        if isinstance(data, _Fixed):
            return data.value
        pool = list(self.pending) + list(self.committed) + list(self.ended) + [b"\x07" * 16]
        return data.draw(st.sampled_from(pool))

    # -- rules -------------------------------------------------------------------------------
    @rule(delta=st.integers(-100, 400))
    def set_time(self, delta):
        last = self.bench.core.last_time
        t = max(T0, last) + delta if delta >= 0 or self.now is None else self.now + delta
        status, answer = self.bench.call("SET_TIME", time=t)
        if t < last:
            assert status == "CLOCK_BACKWARDS"
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

    @rule(lines=lines, itype=itypes)
    def prepare(self, lines, itype):
        self._prepare(lines, itype)

    def _prepare(self, lines, itype):
        status, answer = self.bench.prepare(encode_invoice(make_invoice(lines, itype)))
        if not self.clock_set:
            assert status == "CLOCK_UNSET"
        elif len(self.pending) >= MAX_PENDING:
            assert status == "TOO_MANY_PENDING"
        else:
            assert status == "OK", answer
            assert answer["nonce"] not in self.pending and answer["nonce"] not in self.committed
            assert answer["expires"] == self.now + TTL
            self.pending[answer["nonce"]] = answer["expires"]
            return answer["nonce"]
        return None

    @rule(lines=lines, bump=st.integers(1, 3))
    def prepare_invalid(self, lines, bump):
        doc = make_invoice(lines)
        doc[10][3] += bump   # total no longer follows from the tax lines
        counter = self.bench.core.counter
        status, _ = self.bench.prepare(encode_invoice(doc))
        if not self.clock_set:
            assert status == "CLOCK_UNSET"
        elif len(self.pending) >= MAX_PENDING:
            assert status == "TOO_MANY_PENDING"
        else:
            assert status == "TOTALS_MISMATCH"
        assert counter == self.bench.core.counter
        assert set(self.bench.core.nonces.pending) == set(self.pending)

    @rule(data=st.data())
    def commit(self, data):
        nonce = self._nonce_choices(data)
        c = self.bench.core.counter
        status, answer = self.bench.call("COMMIT", nonce=nonce)
        event("commit of a %s nonce" % ("committed" if nonce in self.committed else "pending" if nonce in self.pending
                                          else "ended" if nonce in self.ended else "unknown"))
        if nonce in self.committed:
            assert status == "OK" and answer["replayed"] and answer["sealed"] == self.committed[nonce]
        elif nonce in self.pending:
            assert status == "OK" and not answer["replayed"]
            assert answer["sealed"][record.S_COUNTER] == c + 1
            self.committed[nonce] = answer["sealed"]
            del self.pending[nonce]
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
        elif nonce in self.committed:
            assert status == "NONCE_COMMITTED"
        else:
            assert status == "NONCE_UNKNOWN"

    @rule(data=st.data())
    def status(self, data):
        nonce = self._nonce_choices(data)
        answer = self.bench.ok("STATUS", nonce=nonce)
        if nonce in self.pending:
            assert answer == {"state": messages.PREPARED, "expires": self.pending[nonce]}
        elif nonce in self.committed:
            assert answer == {"state": messages.COMMITTED, "sealed": self.committed[nonce]}
        elif nonce in self.ended:
            assert answer == {"state": self.ended[nonce]}
        else:
            assert answer == {"state": messages.UNKNOWN}

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

    @precondition(lambda self: self.clock_set)
    @rule(lines=lines, itype=itypes)
    def seal(self, lines, itype):
        """The common path in one step: PREPARE then COMMIT of that nonce."""
        nonce = self._prepare(lines, itype)
        if nonce is not None:
            self.commit(_Fixed(nonce))

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), k=st.integers(0, 3), land=st.integers(0, 300))
    def power_cut_in_commit(self, data, k, land):
        nonce = data.draw(st.sampled_from(sorted(self.pending)))
        c = self.bench.core.counter
        self.bench.flash.cut_after = self.bench.flash.programs + k
        self.bench.flash.cut_bytes = land
        try:
            status, answer = self.bench.call("COMMIT", nonce=nonce)
            assert status == "OK"
            self.committed[nonce] = answer["sealed"]
        except PowerCut:
            pass
        self._power_cycle()
        counter = self.bench.core.counter
        assert counter in (c, c + 1)
        if nonce not in self.committed and counter == c + 1:
            # Sealed before the power dropped: STATUS (after SET_TIME) must reveal it.
            self.bench.ok("SET_TIME", time=max(T0, self.bench.core.last_time))
            self.clock_set, self.now = True, max(T0, self.bench.core.last_time)
            answer = self.bench.ok("STATUS", nonce=nonce)
            assert answer["state"] == messages.COMMITTED
            self.committed[nonce] = answer["sealed"]

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def journal_proves_the_counter(self):
        summary = self.bench.verify()
        assert summary["counter"] == self.bench.core.counter == len(self.committed)
        assert summary["records"] == self.bench.core.seq
        counters = sorted(s[record.S_COUNTER] for s in self.committed.values())
        assert counters == list(range(1, len(counters) + 1))
        assert len(self.bench.core.nonces.pending) <= MAX_PENDING
        if self.clock_set:
            self.bench.core.nonces.expire(self.bench.core.clock.now())
            assert set(self.bench.core.nonces.pending) == set(self.pending)


TestCoreMachine = CoreMachine.TestCase
TestCoreMachine.settings = settings(max_examples=250, stateful_step_count=50, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow])
