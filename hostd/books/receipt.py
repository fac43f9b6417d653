"""Printable receipts of a sealed invoice (issue 14): HTML for 58/80 mm paper, plain text for
ESC/POS printers at 32/42/48 columns, and the QR code as SVG or PNG.

Everything printed comes from the store: the lines, taxes, totals and payments from the canonical
invoice that was sealed (its bytes hash to the record's ``invoice_hash``), and the fiscal number,
auth code, seal time and QR payload from the device's sealed answer, unchanged. The QR code is
drawn by segno (a QR library, ISO/IEC 18004), never by hand; it encodes the device's
``qr_payload``, or, when the merchant configured a verification URL, that URL followed by the
URL-quoted payload: the payload itself is never altered. A credit note prints the fiscal number of
the original it credits (and its reason), from its canonical bytes: the device signed that reference.
"""

import html
import io
from urllib.parse import quote

import segno

from protocol import cbor, invoice, taxgroups
from hostd.intake.amounts import money_text, quantity_text, rate_text

WIDTHS = {58: 32, 80: 48}          # paper width (mm) -> characters of the text layout
COLUMNS = (32, 42, 48)


class Receipt:
    """The facts of one receipt, decoded once from a filed invoice row and its sealed payload."""

    def __init__(self, row, sealed, verify_url=None):
        doc = cbor.decode(row["canonical"])
        self.digits = taxgroups.CURRENCIES[doc[10][4]]
        self.currency = doc[10][4]
        self.merchant_nif, self.outlet, self.terminal, self.cashier = doc[1], doc[2], doc[3], doc[4]
        self.invoice_type, self.client = doc[5], doc[7]
        self.lines = [(i[2] or i[1], i[3], i[4], invoice.round_half_up(i[3] * i[4], invoice.QTY_SCALE), i[5])
                      for i in doc[8]]
        self.taxes = [(t[1], t[3], t[4], t[5]) for t in doc[9]]
        self.totals = doc[10]
        self.payments = [(p[1], p[2]) for p in doc[11]]
        credit = doc.get(12)   # a credit note names its original (canonical key 12, signed by the device)
        self.original, self.reason = (credit[1], credit[2]) if credit else (None, "")
        self.sealed = sealed
        payload = sealed["qr_payload"]
        self.qr_text = payload if not verify_url else verify_url + quote(payload, safe="")

    def money(self, minor):
        return money_text(minor, self.digits)

    def title(self):
        if self.invoice_type in invoice.CREDIT_TYPES:
            return "EXPORT CREDIT NOTE" if self.invoice_type == "export_credit" else "CREDIT NOTE"
        return {"sale": "INVOICE", "advance": "ADVANCE INVOICE", "export": "EXPORT INVOICE"}.get(self.invoice_type,
                                                                                              "INVOICE")


def qr(text, kind, scale=4, fit=False):
    """The QR code of ``text`` as SVG text or PNG bytes (segno, error correction M). ``fit``: an
    SVG with a viewBox and no fixed size, so CSS sizes it (the HTML receipt) without clipping."""
    code = segno.make(text, error="m")
    out = io.BytesIO()
    if kind == "svg":
        code.save(out, kind="svg", scale=scale, xmldecl=False, svgns=True, nl=False, title="fiscal QR code",
                  omitsize=fit)
        return out.getvalue().decode("ascii")
    code.save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def text(receipt, columns=42):
    """A plain-text receipt ``columns`` wide, for an ESC/POS printer's text mode."""
    if columns not in COLUMNS:
        raise ValueError("columns must be one of %s" % (COLUMNS,))
    r, out = receipt, []

    def pair(left, right):
        room = columns - len(right) - 1
        out.append((left[:room] if len(left) > room else left).ljust(room) + " " + right)

    out.append(r.title().center(columns))
    out.append(("NIF %s" % r.merchant_nif).center(columns))
    out.append(("%s / %s / %s" % (r.outlet, r.terminal, r.cashier))[:columns].center(columns))
    if r.client[1] or r.client[2]:
        out.append(("Client: %s %s" % (r.client[1], "NIF " + r.client[2] if r.client[2] else "")).strip()[:columns])
    if r.original:
        pair("Credits", r.original)
        if r.reason:
            out.append(("Reason: %s" % r.reason)[:columns])
    out.append("-" * columns)
    for desc, qty, price, amount, group in r.lines:
        out.append(desc[:columns])
        pair("  %s x %s %s" % (quantity_text(qty), r.money(price), group), r.money(amount))
    out.append("-" * columns)
    for code, rate, base, tax in r.taxes:
        pair("%s %s%% on %s" % (code, rate_text(rate * 100), r.money(base)), r.money(tax))
    pair("Subtotal", r.money(r.totals[1]))
    pair("VAT", r.money(r.totals[2]))
    pair("TOTAL %s" % r.currency, r.money(r.totals[3]))
    for method, amount in r.payments:
        pair("Paid %s" % method, r.money(amount))
    out.append("-" * columns)
    s = r.sealed
    for label, value in (("Fiscal no", s["fiscal_number"]), ("Auth", s["auth_code"]), ("Time", s["timestamp"]),
                         ("Device", s["fiscal_authority_id"])):
        pair(label, value)
    out.append("QR:")
    payload = r.qr_text
    out.extend(payload[i:i + columns] for i in range(0, len(payload), columns))
    return "\n".join(out) + "\n"


def page(receipt, width=80):
    """A printable HTML receipt for ``width`` mm paper (58 or 80), the QR as inline SVG."""
    if width not in WIDTHS:
        raise ValueError("width must be 58 or 80")
    r, e = receipt, html.escape
    rows = "".join('<tr><td>%s<br><small>%s &times; %s %s</small></td><td class="n">%s</td></tr>'
                   % (e(d), e(quantity_text(q)), e(r.money(p)), e(g), e(r.money(a))) for d, q, p, a, g in r.lines)
    taxes = "".join('<tr><td>%s %s%% on %s</td><td class="n">%s</td></tr>'
                    % (e(c), e(rate_text(rate * 100)), e(r.money(b)), e(r.money(t))) for c, rate, b, t in r.taxes)
    pays = "".join('<tr><td>Paid %s</td><td class="n">%s</td></tr>' % (e(m), e(r.money(a))) for m, a in r.payments)
    s = r.sealed
    client = ""
    if r.original:
        client += '<p>Credits <span id="original">%s</span></p>' % e(r.original)
        if r.reason:
            client += '<p id="reason">%s</p>' % e(r.reason)
    if r.client[1] or r.client[2]:
        client += '<p class="client">Client: %s%s</p>' % (e(r.client[1]), " &middot; NIF " + e(r.client[2])
                                                            if r.client[2] else "")
    return """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>%(title)s %(number)s</title>
<style>
@page { size: %(w)dmm auto; margin: 2mm; }
body { width: %(inner)dmm; margin: 0 auto; font: 10pt/1.3 monospace; }
h1 { font-size: 11pt; text-align: center; margin: 0 0 2mm; }
p { margin: 0; text-align: center; } table { width: 100%%; border-collapse: collapse; }
td.n { text-align: right; white-space: nowrap; vertical-align: top; } tr.total td { font-weight: bold; }
hr { border: 0; border-top: 1px dashed #000; }
.qr svg { display: block; margin: 2mm auto; width: %(qr)dmm; height: auto; shape-rendering: crispEdges; }
dl { display: grid; grid-template-columns: auto 1fr; margin: 0; } dt { font-weight: bold; } dd { margin: 0 0 0 2mm; }
</style></head>
<body class="receipt w%(w)d">
<h1 id="title">%(title)s</h1>
<p>NIF %(nif)s</p><p>%(outlet)s / %(terminal)s / %(cashier)s</p>%(client)s
<hr><table id="lines">%(rows)s</table><hr>
<table id="taxes">%(taxes)s
<tr><td>Subtotal</td><td class="n" id="subtotal">%(subtotal)s</td></tr>
<tr><td>VAT</td><td class="n" id="vat">%(vat)s</td></tr>
<tr class="total"><td>TOTAL %(currency)s</td><td class="n" id="total">%(total)s</td></tr>%(pays)s</table><hr>
<dl><dt>Fiscal no</dt><dd id="fiscal-number">%(number)s</dd><dt>Auth</dt><dd id="auth-code">%(auth)s</dd>
<dt>Time</dt><dd id="time">%(time)s</dd><dt>Device</dt><dd id="device">%(device)s</dd></dl>
<div class="qr" id="qr" data-payload="%(payload)s">%(svg)s</div>
</body></html>
""" % {"title": e(r.title()), "number": e(s["fiscal_number"]), "w": width, "inner": width - 6, "qr": min(40, width - 18),
       "nif": e(r.merchant_nif), "outlet": e(r.outlet), "terminal": e(r.terminal), "cashier": e(r.cashier),
       "client": client, "rows": rows, "taxes": taxes, "subtotal": e(r.money(r.totals[1])),
       "vat": e(r.money(r.totals[2])), "total": e(r.money(r.totals[3])), "currency": e(r.currency), "pays": pays,
       "auth": e(s["auth_code"]), "time": e(s["timestamp"]), "device": e(s["fiscal_authority_id"]),
       "payload": e(r.qr_text), "svg": qr(r.qr_text, "svg", fit=True)}
