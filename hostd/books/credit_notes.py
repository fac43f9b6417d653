"""Credit notes made from a sealed original (issue 11; seed 002 ``void`` and ``refund``), and an
original's balance, as pure functions over what the store filed.

A void or a refund is a new fiscal event: a canonical JSON invoice of type ``credit_note`` (or
``export_credit`` for an export) that names its original in ``credit``, carries the original's
merchant, outlet, terminal, cashier, client and currency, is dated now, and then takes exactly the
path a POS invoice takes (hostd/intake/canonical.py, the device's checks, one seal). Nothing here
decides whether the original may be credited: the device's rules (device/credits.py) are checked
on the owner thread against what the device proved in EVIDENCE (hostd/owner/credits.py).

- **void** without ``adjustments`` credits every line of the original as it was; with them, each
  adjustment names a line by ``code`` (or by ``line``, its index in the original's ``items``, when
  a code appears twice) and the ``quantity`` credited, at most the line's own.
- **refund** credits a tax-inclusive ``amount``, one line per tax group, split pro rata of what
  remains of each group (hostd/books/refunds.py says the rounding rule).

The credit note's one payment is the money given back: the original's first payment method, with
the original's instrument for a void and the refund's ``payment_reference`` for a refund.
"""

from protocol import invoice, record, taxgroups
from hostd.books import refunds
from hostd.errors import CreditExceedsBalance, InvalidPayload
from hostd.intake import shapes
from hostd.intake.amounts import money_text, quantity_text, scaled

KINDS = {"sale": "credit_note", "advance": "credit_note", "export": "export_credit"}


def original_groups(sealed_payload):
    """[[code, base, tax]] of the original, from its signed record (the device's own figures)."""
    fields = record.decode(bytes.fromhex(sealed_payload["signed_record"] + sealed_payload["signature"]))[0]
    return [[g[0], g[2], g[3]] for g in fields[record.K_GROUPS]]


def remaining(groups, credited):
    """What is left of each group of the original ``groups`` after ``credited`` (both
    [[code, base, tax]]), in the original's order: the device's rule (device/credits.py)."""
    done = dict((c, (b, t)) for c, b, t in credited)
    return [[c, b - done.get(c, (0, 0))[0], t - done.get(c, (0, 0))[1]] for c, b, t in groups]


def add_credited(credited, groups):
    """The credited list [[code, base, tax]] after one more credit of ``groups``, sorted by code."""
    done = dict((c, [b, t]) for c, b, t in credited)
    for code, base, tax in groups:
        cur = done.get(code, [0, 0])
        done[code] = [cur[0] + base, cur[1] + tax]
    return [[c] + done[c] for c in sorted(done)]


def void_document(original, number, reason, adjustments, timestamp):
    """The credit note (canonical JSON document) voiding the original canonical map ``original``
    (decoded CBOR) with fiscal ``number``, fully or by ``adjustments``."""
    items = original[8] if not adjustments else _adjusted(original[8], adjustments)
    pay = original[11][0]
    return _document(original, number, reason, items, timestamp, pay[3])


def refund_document(original, number, reason, groups, payment_reference, timestamp):
    """The credit note refunding ``groups`` [[code, base, tax]] (hostd/books/refunds.py split)."""
    items = [{1: "REFUND-" + code, 2: "Refund %s" % code, 3: invoice.QTY_SCALE, 4: base, 5: code, 6: ""}
             for code, base, _ in groups]
    return _document(original, number, reason, items, timestamp, payment_reference)


def _adjusted(lines, adjustments):
    """The original's ``lines`` (canonical items) credited by the adjustments, in their order."""
    out, used = [], set()
    for i, adj in enumerate(adjustments):
        where = "adjustments[%d]" % i
        index = _line_of(lines, adj, where)
        if index in used:
            raise InvalidPayload("%s names line %d of the original a second time" % (where, index), where)
        used.add(index)
        line = lines[index]
        quantity = scaled(adj["quantity"], invoice.QTY_SCALE, where + ".quantity", "thousandths")
        if quantity <= 0:
            raise InvalidPayload("%s.quantity must be greater than 0" % where, where + ".quantity")
        if quantity > line[3]:
            raise CreditExceedsBalance("%s.quantity %s is more than the original's line %d holds (%s)" % (
                where, quantity_text(quantity), index, quantity_text(line[3])), where + ".quantity")
        credited = dict(line)
        credited[3] = quantity
        out.append(credited)
    return out


def _line_of(lines, adj, where):
    if "line" in adj:
        index = adj["line"]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(lines):
            raise InvalidPayload("%s.line must be an index of the original's items (0..%d)" % (where, len(lines) - 1),
                                 where + ".line")
        if "code" in adj and adj["code"] != lines[index][1]:
            raise InvalidPayload("%s.code %r is not the code of the original's line %d (%r)"
                                 % (where, adj["code"], index, lines[index][1]), where + ".code")
        return index
    found = [i for i, line in enumerate(lines) if line[1] == adj.get("code")]
    if not found:
        raise InvalidPayload("%s.code %r is not a code of the original's items" % (where, adj.get("code")),
                             where + ".code")
    if len(found) > 1:
        raise InvalidPayload("%s.code %r names %d lines of the original: give line (0..%d) as well"
                             % (where, adj["code"], len(found), len(lines) - 1), where + ".code")
    return found[0]


def _document(original, number, reason, items, timestamp, instrument):
    """The credit note's canonical JSON document: the original's header, ``items`` (canonical
    maps), the totals rule's groups (rates in force at ``timestamp``), one payment of the total."""
    currency = original[10][4]
    groups = invoice.compute_groups(items, timestamp)
    subtotal, vat = sum(g[2] for g in groups), sum(g[3] for g in groups)
    client = original[7]
    doc = shapes.document(
        {"merchant_nif": original[1], "outlet_id": original[2], "pos_terminal_id": original[3],
         "cashier_id": original[4]}, KINDS.get(original[5], "credit_note"), timestamp,
        {"name": client[1], "nif": client[2], "classification": client[3]},
        [{"code": i[1], "description": i[2], "quantity": i[3], "unit_price": i[4], "tax_group": i[5],
          "taxable_unit": i[6]} for i in items],
        [{"code": c, "rate": r, "base_amount": b, "tax_amount": t} for c, r, b, t in groups],
        {"subtotal": subtotal, "total_vat": vat, "total": subtotal + vat},
        [{"method": original[11][0][1], "amount": subtotal + vat, "instrument_id": instrument}],
        currency, taxgroups.CURRENCIES[currency])
    doc["credit"] = {"original_fiscal_number": number, "reason": reason}
    return doc


def balance_view(groups, credits, currency, rates):
    """What GET of an original shows: its ``credits`` (hostd/store/credits.py rows, oldest first)
    and the remaining ``balance`` per group and in total, and how much of it a refund can still
    take with ``rates`` {code: ppm} in force now (``refundable``: a cent of tax may be left that no
    credit note can take, hostd/books/refunds.py), amounts as decimal strings."""
    digits = taxgroups.CURRENCIES.get(currency, 2)
    credited = []
    for entry in credits:
        credited = add_credited(credited, entry["groups"])
    left = remaining(groups, credited)

    def money(minor):
        return money_text(minor, digits)
    return {
        "credits": [{"fiscal_number": c["fiscal_number"], "counter": c["counter"], "invoice_type": c["invoice_type"],
                     "sealed_at": c["sealed_at"], "total": money(c["total"]) if c["total"] is not None else None,
                     "tax_groups": [{"code": g, "base_amount": money(b), "tax_amount": money(t)}
                                    for g, b, t in c["groups"]]} for c in credits],
        "balance": {"currency": currency, "total": money(sum(b + t for _, b, t in left)),
                    "credited": money(sum(b + t for _, b, t in credited)),
                    "refundable": money(refunds.refundable(left, rates)) if all(g[0] in rates for g in left) else None,
                    "tax_groups": [{"code": c, "base_amount": money(b), "tax_amount": money(t), "total": money(b + t)}
                                   for c, b, t in left]},
    }
