"""Credits against a model, driven by hypothesis (DESIGN-NOTES invariant 11, issue 11).

Random interleavings of sales and exports, partial refunds, voids, credits of credits, credits in
the wrong currency or kind, replays of stale evidence, CLOSE, ARCHIVED (the host keeps the archive),
power cuts in a credit's SEAL and clean power cycles. The host side of the model keeps what a host
keeps: the records it read and the credit tree's leaves (protocol/smt.py), from which it makes the
proofs. After every step, from the journal itself (archive + live records, decoded independently of
the device code): no original's credited total exceeds it in any tax group, base or tax; every
credit names an earlier non-credit invoice of the same currency and kind; the device's credit root
is the root of the model's tree; and the whole history verifies with protocol.verify.
"""

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from protocol import cbor, record, smt
from protocol.errors import PowerCut
from tests.devkit import T0, Bench, encode_invoice, make_invoice

SECTORS = 8
KIND = {"credit_note": ("sale", "advance"), "export_credit": ("export",)}
lines = st.lists(st.tuples(st.integers(1, 3000), st.integers(1, 10 ** 5), st.sampled_from(["TG02", "TG03", "TG04"])),
                 min_size=1, max_size=3)


def body(rec):
    return cbor.decode(rec[:-record.SIG_LEN])


class CreditMachine(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.bench = Bench(flash_size=SECTORS * 4096)
        self.bench.ok("SET_TIME", time=T0)
        self.tree = smt.Tree()       # the host's leaves
        self.found = {}              # counter -> (record, prev): the host's copy of every invoice
        self.stale = []              # evidence once valid: (counter, credited, proof)

    # -- the host's books ------------------------------------------------------------------------
    def _learn(self):
        """Read what is new in the journal, as a host mirrors it, and update the leaves."""
        prev = record.genesis()
        for rec in self.bench.history():
            f = body(rec)
            if f[record.K_TYPE] == record.INVOICE and f[record.K_COUNTER] not in self.found:
                self.found[f[record.K_COUNTER]] = (rec, prev)
                if record.K_ORIGINAL in f:
                    done = dict((c, [b, t]) for c, b, t in self.tree.credited(f[record.K_ORIGINAL]))
                    for code, _, base, tax in f[record.K_GROUPS]:
                        cur = done.get(code, [0, 0])
                        done[code] = [cur[0] + base, cur[1] + tax]
                    self.tree.set(f[record.K_ORIGINAL], [[c] + done[c] for c in sorted(done)])
            prev = record.record_hash(prev, rec)

    def _original(self, data, credits=False):
        pool = sorted(n for n in self.found if (record.K_ORIGINAL in body(self.found[n][0])) == credits)
        return data.draw(st.sampled_from(pool)) if pool else None

    def _evidence(self, n):
        rec, prev = self.found[n]
        credited, proof = self.tree.credited(n), self.tree.proof(n)
        status, answer = self.bench.call("EVIDENCE", record=rec, prev=prev, credited=credited, proof=proof)
        if status == "OK":
            self.stale.append((n, credited, proof))
        return status, answer

    def _remaining(self, n):
        f = body(self.found[n][0])
        done = dict((c, (b, t)) for c, b, t in self.tree.credited(n))
        return f, [[g[0], g[2] - done.get(g[0], (0, 0))[0], g[3] - done.get(g[0], (0, 0))[1]]
                   for g in f[record.K_GROUPS]]

    def _credit_doc(self, n, parts, itype=None, currency=None):
        f = body(self.found[n][0])
        itype = itype or ("export_credit" if f[record.K_INVOICE_TYPE] == "export" else "credit_note")
        return make_invoice(parts, itype, currency=currency or f[record.K_CURRENCY],
                            credit=record.fiscal_number(f[record.K_DEVICE], n))

    def _seal_credit(self, doc):
        c = self.bench.core.counter
        status, answer = self.bench.seal(encode_invoice(doc))
        event("credit %s" % status)
        if status == "OK":
            assert self.bench.core.counter == c + 1
        else:
            assert self.bench.core.counter == c
        self._learn()
        return status, answer

    # -- rules -----------------------------------------------------------------------------------
    @rule(lines=lines, export=st.booleans(), usd=st.booleans())
    def sale(self, lines, export, usd):
        if export:
            lines = [(q, p, "TG05") for q, p, _ in lines]
        doc = make_invoice(lines, "export" if export else "sale", currency="USD" if usd else "CDF")
        status, _ = self.bench.seal(encode_invoice(doc))
        assert status in ("OK", "JOURNAL_FULL", "CLOCK_UNSET")
        self._learn()

    @rule(data=st.data(), share=st.integers(1, 100), over=st.booleans())
    def partial_refund(self, data, share, over):
        """A refund of ``share`` % of what remains of one group, or more than remains."""
        n = self._original(data)
        if n is None:
            return
        f, left = self._remaining(n)
        code, base, tax = data.draw(st.sampled_from(left))
        want = base + 1 if over else max(1, base * share // 100)
        if self._evidence(n)[0] != "OK":
            return
        # one item of quantity 1 at the unit price ``want``: its base is ``want``, its tax the rounded rate
        status, detail = self._seal_credit(self._credit_doc(n, [(1000, want, code)]))
        if all(b == 0 and t == 0 for _, b, t in left):
            assert status in ("CREDIT_SETTLED", "JOURNAL_FULL"), (status, detail)
        elif want > base:
            assert status in ("CREDIT_EXCEEDS", "JOURNAL_FULL"), (status, detail)
        else:   # within the base; the tax, rounded per credit, may still exceed what remains of it
            assert status in ("OK", "CREDIT_EXCEEDS", "JOURNAL_FULL"), (status, detail)

    @rule(data=st.data())
    def void(self, data):
        """Credit everything that remains; a void of a settled original is CREDIT_SETTLED."""
        n = self._original(data)
        if n is None or self._evidence(n)[0] != "OK":
            return
        f, left = self._remaining(n)
        parts = [(1000, base, code) for code, base, tax in left if base]
        settled = not [g for g in left if g[1] or g[2]]
        status, detail = self._seal_credit(self._credit_doc(n, parts or [(1000, 1, left[0][0])]))
        if settled:
            assert status in ("CREDIT_SETTLED", "JOURNAL_FULL"), (status, detail)
        else:
            # the same rate gives the same tax for the same base only when nothing was credited in
            # the group before: otherwise the rounding may differ by one and exceed the rest
            assert status in ("OK", "CREDIT_EXCEEDS", "JOURNAL_FULL"), (status, detail)

    @rule(data=st.data())
    def credit_of_a_credit(self, data):
        n = self._original(data, credits=True)
        if n is None:
            return
        image = self.bench.flash.image()
        assert self._evidence(n)[0] == "CREDIT_OF_CREDIT"
        assert self.bench.flash.image() == image

    @rule(data=st.data(), wrong=st.sampled_from(["currency", "kind", "unknown", "no evidence"]))
    def refused_credit(self, data, wrong):
        n = self._original(data)
        if n is None:
            return
        f, left = self._remaining(n)
        code = left[0][0]
        itype = currency = None
        if wrong == "currency":
            currency = "USD" if f[record.K_CURRENCY] == "CDF" else "CDF"
        elif wrong == "kind":
            itype = "credit_note" if f[record.K_INVOICE_TYPE] == "export" else "export_credit"
            code = "TG05" if itype == "export_credit" else code
        doc = self._credit_doc(n, [(1000, 1, code)], itype, currency)
        if wrong == "unknown":
            doc[12][1] = record.fiscal_number(f[record.K_DEVICE], self.bench.core.counter + 1)
        if wrong != "no evidence":
            if self._evidence(n)[0] != "OK":
                return
        else:
            self.bench.reboot()      # armed evidence is RAM: gone
            self.bench.ok("SET_TIME", time=max(T0, self.bench.core.last_time) + 1)
        image = self.bench.flash.image()
        status, _ = self.bench.seal(encode_invoice(doc))
        assert status == {"currency": "CREDIT_CURRENCY", "kind": "CREDIT_KIND", "unknown": "CREDIT_ORIGINAL_UNKNOWN",
                          "no evidence": "CREDIT_EVIDENCE_MISSING"}[wrong]
        assert self.bench.flash.image() == image

    @precondition(lambda self: self.stale)
    @rule(data=st.data())
    def stale_evidence(self, data):
        n, credited, proof = data.draw(st.sampled_from(self.stale))
        rec, prev = self.found[n]
        status, _ = self.bench.call("EVIDENCE", record=rec, prev=prev, credited=credited, proof=proof)
        if self.tree.credited(n) == credited and self.tree.proof(n) == proof:
            assert status == "OK"
        else:
            assert status == "CREDIT_EVIDENCE_STALE"

    @rule()
    def close_and_archive(self):
        status, _ = self.bench.close_z(self.bench.z_period())
        if status == "OK":
            z = self.bench.core.journal.closed["Z"]
            assert self.bench.archive_call(z, close=False)[0] in ("OK", "JOURNAL_FULL")

    @rule(data=st.data(), k=st.integers(0, 2), land=st.integers(0, 300))
    def power_cut_in_a_credit(self, data, k, land):
        n = self._original(data)
        if n is None or self._evidence(n)[0] != "OK":
            return
        f, left = self._remaining(n)
        code, base, tax = left[0]
        c = self.bench.core.counter
        self.bench.flash.cut_after, self.bench.flash.cut_bytes = self.bench.flash.programs + k, land
        try:
            self.bench.seal(encode_invoice(self._credit_doc(n, [(1000, max(1, base // 2), code)])))
        except PowerCut:
            pass
        self.bench.reboot()
        assert self.bench.core.counter in (c, c + 1)
        self.bench.ok("SET_TIME", time=max(T0, self.bench.core.last_time) + 1)
        self._learn()

    @rule()
    def power_cycle(self):
        self.bench.reboot()
        self.bench.ok("SET_TIME", time=max(T0, self.bench.core.last_time) + 1)

    # -- invariants ------------------------------------------------------------------------------
    @invariant()
    def no_original_is_over_credited(self):
        history = self.bench.history()
        originals, credited = {}, {}
        for rec in history:
            f = body(rec)
            if f[record.K_TYPE] != record.INVOICE:
                continue
            if record.K_ORIGINAL not in f:
                originals[f[record.K_COUNTER]] = f
                continue
            orig = originals[f[record.K_ORIGINAL]]              # an earlier non-credit invoice
            assert orig[record.K_INVOICE_TYPE] in KIND[f[record.K_INVOICE_TYPE]]
            assert orig[record.K_CURRENCY] == f[record.K_CURRENCY]
            limit = dict((g[0], (g[2], g[3])) for g in orig[record.K_GROUPS])
            for code, _, base, tax in f[record.K_GROUPS]:
                cur = credited.setdefault((f[record.K_ORIGINAL], code), [0, 0])
                cur[0] += base
                cur[1] += tax
                assert code in limit and cur[0] <= limit[code][0] and cur[1] <= limit[code][1]
        assert (self.bench.core.journal.credit_root or smt.empty_root()) == self.tree.root()

    @invariant()
    def the_history_verifies(self):
        summary = self.bench.verify()
        assert summary["counter"] == self.bench.core.counter
        assert summary["credit_root"] == self.bench.core.journal.credit_root


TestCreditMachine = CreditMachine.TestCase
TestCreditMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])
