"""The CSV export and the CSV reconciliation of seed 000 section 2 (issue 12).

Columns, as the seed names them: ``invoice_number, issue_date, client_name, tax_group, subtotal,
total_vat, total, status``; one row per sealed invoice and tax group, oldest first.
``invoice_number`` is the fiscal number, ``issue_date`` the date of the invoice's own timestamp,
``subtotal``/``total_vat``/``total`` the group's base, tax and base + tax in currency units with
the currency's decimals (``1160.00``), negative for credit notes, and ``status`` is
``fiscalized``.

Written with the ``csv`` module (RFC 4180: CRLF line ends, quotes where needed). Text cells that
start with ``= + - @``, a tab or a carriage return are neutralised with a leading ``'`` (OWASP
"CSV injection", CWE-1236), so a client named ``=HYPERLINK(...)`` cannot run in a spreadsheet;
number cells are written as numbers and never neutralised, so a credit's ``-100.00`` stays a
number. The reconciliation reads such a cell back without its ``'``.
"""

import csv
import io
from decimal import Decimal, InvalidOperation

from protocol import cbor, invoice, taxgroups
from hostd.intake.amounts import money_text

COLUMNS = ("invoice_number", "issue_date", "client_name", "tax_group", "subtotal", "total_vat", "total", "status")
_RISKY = ("=", "+", "-", "@", "\t", "\r")
NUMBERS = ("subtotal", "total_vat", "total")


def neutral(text):
    return "'" + text if text and text[0] in _RISKY else text


def unneutral(text):
    return text[1:] if len(text) > 1 and text[0] == "'" and text[1] in _RISKY else text


def rows_of(invoice_row):
    """The export rows (dicts of text) of one filed invoice row of the store."""
    doc = cbor.decode(invoice_row["canonical"])
    digits = taxgroups.CURRENCIES[doc[10][4]]
    sign = "-" if doc[5] in invoice.CREDIT_TYPES else ""
    out = []
    for line in doc[9]:
        base, tax = line[4], line[5]
        out.append({"invoice_number": invoice_row["fiscal_number"], "issue_date": doc[6][:10],
                    "client_name": doc[7][1], "tax_group": line[1],
                    "subtotal": _signed(sign, base, digits), "total_vat": _signed(sign, tax, digits),
                    "total": _signed(sign, base + tax, digits), "status": "fiscalized"})
    return out


def _signed(sign, minor, digits):
    return (sign if minor else "") + money_text(minor, digits)


def write(rows):
    """CSV text of export rows (header first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row[c] if c in NUMBERS else neutral(row[c]) for c in COLUMNS])
    return out.getvalue()


def reconcile(text, lookup):
    """Compare each row of an uploaded CSV with the sealed invoices; seal nothing.

    ``lookup(invoice_number)`` returns that invoice's export rows or None. Answers one entry per
    data row: ``matched``, ``mismatched`` (naming the columns), or ``unknown`` (no such fiscal
    number, or no such tax group on it)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    results = []
    if missing:
        return missing, results
    for number, row in enumerate(reader, start=2):
        wanted = unneutral(row["invoice_number"] or "")
        sealed = lookup(wanted)
        entry = {"row": number, "invoice_number": wanted, "tax_group": row["tax_group"]}
        match = None if sealed is None else next((r for r in sealed if r["tax_group"] == row["tax_group"]), None)
        if match is None:
            entry["result"] = "unknown"
        else:
            differ = [c for c in COLUMNS if not _same(c, row[c], match[c])]
            entry["result"] = "mismatched" if differ else "matched"
            if differ:
                entry["columns"] = differ
        results.append(entry)
    return missing, results


def _same(column, given, sealed):
    given = given or ""
    if column in NUMBERS:
        try:
            return Decimal(given) == Decimal(sealed)
        except InvalidOperation:
            return False
    return unneutral(given) == sealed
