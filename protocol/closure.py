"""Closure figures (Z, M, Y and X): what a closure sums, in one place for the device and the verifier.

NF525 (reference fiscal-device-standards.md section 3; seed 004) asks for daily, monthly and yearly
closures fixing the period's figures and the perpetual grand totals. PROTOCOL.md 7.10 defines the
CLOSURE record; this module computes its figure keys from the records it covers:

- ``fiscal`` (25): [first, last] fiscal counter of the period's invoices, [0, 0] when none;
- ``counts`` (26): [[invoice_type, n], ...] sorted by type, types with n > 0 only;
- ``figures`` (27): per currency, sorted: [currency, perpetual, perpetual_abs, groups], with groups
  [[code, sales_base, sales_tax, credit_base, credit_tax], ...] sorted by code (all-zero entries
  dropped). ``perpetual`` is the perpetual grand total (NF525 PerpetualAmount): the sum of every
  invoice total since record 1, credits negative; ``perpetual_abs`` (PerpetualAbsoluteAmount) the
  same sum with credits positive. Amounts of different currencies are never added together.

A Z sums the INVOICE records of its period onto the previous Z's perpetual totals; an M sums its
Zs' groups, counts and ranges and takes the perpetual totals of its last Z; a Y does the same with
Ms. MicroPython-compatible: integers only, no dict order relied on.
"""

from protocol import record, timefmt
from protocol.errors import CloseError, InvoiceError

CREDIT_TYPES = ("credit_note", "export_credit")
INNER = {"M": "Z", "Y": "M"}     # what an M or a Y is made of


SIZE = {"Z": 10, "M": 7, "Y": 4}
SUFFIX = {"Z": "T00:00:00Z", "M": "-01T00:00:00Z", "Y": "-01-01T00:00:00Z"}
FORMAT = {"Z": "YYYY-MM-DD", "M": "YYYY-MM", "Y": "YYYY"}


def check_period(kind, period):
    """The start of a period as ``YYYY-MM-DDTHH:MM:SSZ``: a Z's is ``YYYY-MM-DD``, an M's
    ``YYYY-MM``, a Y's ``YYYY`` (CLOSE_PERIOD otherwise)."""
    if kind not in SIZE:
        raise CloseError("CLOSE_PERIOD", "kind must be Z, M or Y, not %r" % (kind,))
    text = period + SUFFIX[kind]
    try:
        if len(period) != SIZE[kind]:
            raise InvoiceError("INVOICE_TIMESTAMP", "wrong length")
        timefmt.parse_time(text, "period")
    except InvoiceError:
        raise CloseError("CLOSE_PERIOD", "a %s period is %s, not %r" % (kind, FORMAT[kind], period))
    return text


class Figures:
    """Accumulates the figure keys of one closure."""

    def __init__(self, perpetual=()):
        self.groups = {}        # currency -> code -> [sales base, sales tax, credit base, credit tax]
        self.perpetual = {}     # currency -> [perpetual, perpetual_abs]
        for cur, total, absolute in perpetual:
            self.perpetual[cur] = [total, absolute]
        self.counts = {}
        self.fiscal = [0, 0]

    def _fiscal(self, first, last):
        if first:
            if not self.fiscal[0]:
                self.fiscal[0] = first
            self.fiscal[1] = last

    def _cell(self, cur, code):
        table = self.groups.setdefault(cur, {})
        if code not in table:
            table[code] = [0, 0, 0, 0]
        return table[code]

    def add_invoice(self, fields):
        """One INVOICE record of a Z's period."""
        itype, cur, total = fields[record.K_INVOICE_TYPE], fields[record.K_CURRENCY], fields[record.K_TOTAL]
        credit = itype in CREDIT_TYPES
        for code, _, base, tax in fields[record.K_GROUPS]:
            cell = self._cell(cur, code)
            at = 2 if credit else 0
            cell[at] += base
            cell[at + 1] += tax
        pair = self.perpetual.setdefault(cur, [0, 0])
        pair[0] += -total if credit else total
        pair[1] += total
        self.counts[itype] = self.counts.get(itype, 0) + 1
        self._fiscal(fields[record.K_COUNTER], fields[record.K_COUNTER])

    def add_closure(self, fields):
        """One Z of an M (or one M of a Y): its sums, and its perpetual totals from now on."""
        for itype, n in fields[record.K_COUNTS]:
            self.counts[itype] = self.counts.get(itype, 0) + n
        self.perpetual = {}
        for cur, total, absolute, groups in fields[record.K_FIGURES]:
            self.perpetual[cur] = [total, absolute]
            for code, sb, st, cb, ct in groups:
                cell = self._cell(cur, code)
                cell[0] += sb
                cell[1] += st
                cell[2] += cb
                cell[3] += ct
        self._fiscal(fields[record.K_FISCAL][0], fields[record.K_FISCAL][1])

    def grand(self):
        """[[currency, perpetual, perpetual_abs], ...]: what a CHECKPOINT keeps of the last Z."""
        return [[cur, self.perpetual[cur][0], self.perpetual[cur][1]] for cur in sorted(self.perpetual)]

    def fields(self):
        """{25: fiscal, 26: counts, 27: figures} of the closure."""
        figures = []
        for cur in sorted(set(list(self.groups) + list(self.perpetual))):
            table = self.groups.get(cur, {})
            rows = [[code] + table[code] for code in sorted(table) if table[code] != [0, 0, 0, 0]]
            pair = self.perpetual.get(cur, [0, 0])
            figures.append([cur, pair[0], pair[1], rows])
        counts = [[t, self.counts[t]] for t in sorted(self.counts) if self.counts[t]]
        return {record.K_FISCAL: list(self.fiscal), record.K_COUNTS: counts, record.K_FIGURES: figures}


def grand_of(fields):
    """The perpetual totals [[currency, perpetual, perpetual_abs], ...] a closure carries."""
    return [[f[0], f[1], f[2]] for f in fields[record.K_FIGURES]]
