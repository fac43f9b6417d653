"""The canonical invoice: its CBOR layout, and the one totals rule device and host both apply.

Layout (seed 002, "Canonical payload"): a canonical CBOR map whose integer keys 1-11 are the
seed's numbered fields, so canonical key order *is* the mandated field order. Sub-objects use
integer keys too (tables below). Money is integer minor units, rates integer parts per million,
quantities integer thousandths (3 decimals, so 1.5 kg is 1500).

Totals rule (DESIGN-NOTES section 5), applied per tax group g in force at the invoice timestamp:

    base(g)  = round_half_up( sum(quantity x unit_price) / 1000 )   over the items of g
    tax(g)   = round_half_up( base(g) x rate(g) / 1000000 )
    subtotal = sum base,  total_vat = sum tax,  total = subtotal + total_vat,  sum payments = total

Credit types (``credit_note``, ``export_credit``) carry key 12 ``credit`` = {1: the original's fiscal
number, 2: a reason}: required for them, refused on any other type. The tax rules come from the
installed country profile (protocol/taxgroups.py): rates in force, the currencies, and which groups
each invoice type and client class may use.

``check`` refuses any deviation with a distinct error code and a detail naming the field.
"""

from protocol import cbor, taxgroups, timefmt
from protocol.errors import CborError, InvoiceError

TYPES = ("sale", "advance", "credit_note", "export", "export_credit")
CREDIT_TYPES = ("credit_note", "export_credit")
CLASSIFICATIONS = ("Individual", "Company", "CommercialIndividual", "Professional", "Embassy")

MAX_INVOICE = 16384   # bytes of canonical CBOR
MAX_ITEMS = 500
MAX_TEXT = 256        # characters in any text field
MAX_AMOUNT = 10 ** 15  # minor units; far above any real invoice, keeps products bounded
QTY_SCALE = 1000

# (key, name, kind, may_be_empty); kind is "str", "int", a nested table, or ("list", table)
CLIENT = ((1, "name", "str", True), (2, "nif", "str", True), (3, "classification", "str", False))
ITEM = ((1, "code", "str", False), (2, "description", "str", True), (3, "quantity", "int", False),
        (4, "unit_price", "int", False), (5, "tax_group", "str", False), (6, "taxable_unit", "str", True))
TAX_LINE = ((1, "code", "str", False), (2, "name", "str", True), (3, "rate", "int", False),
            (4, "base_amount", "int", False), (5, "tax_amount", "int", False))
TOTALS = ((1, "subtotal", "int", False), (2, "total_vat", "int", False), (3, "total", "int", False),
          (4, "currency", "str", False))
PAYMENT = ((1, "method", "str", False), (2, "amount", "int", False), (3, "instrument_id", "str", True),
           (4, "currency", "str", False))
CREDIT = ((1, "original_fiscal_number", "str", False), (2, "reason", "str", True))
INVOICE = ((1, "merchant_nif", "str", False), (2, "outlet_id", "str", False),
           (3, "pos_terminal_id", "str", False), (4, "cashier_id", "str", False),
           (5, "invoice_type", "str", False), (6, "timestamp", "str", False), (7, "client", CLIENT, False),
           (8, "items", ("list", ITEM), False), (9, "tax_groups", ("list", TAX_LINE), False),
           (10, "totals", TOTALS, False), (11, "payments", ("list", PAYMENT), False))
OPTIONAL = ((12, "credit", CREDIT, False),)   # present exactly on the credit types


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_value(value, kind, empty_ok, path):
    if kind == "str":
        if not isinstance(value, str):
            raise InvoiceError("INVOICE_MALFORMED", "%s must be text" % path)
        if len(value) > MAX_TEXT:
            raise InvoiceError("INVOICE_MALFORMED", "%s is longer than %d characters" % (path, MAX_TEXT))
        if not value and not empty_ok:
            raise InvoiceError("INVOICE_MALFORMED", "%s must not be empty" % path)
    elif kind == "int":
        if not _is_int(value):
            raise InvoiceError("INVOICE_MALFORMED", "%s must be an integer" % path)
        if value < 0 or value > MAX_AMOUNT:
            raise InvoiceError("AMOUNT_INVALID", "%s must be between 0 and %d" % (path, MAX_AMOUNT))
    elif isinstance(kind, tuple) and kind and kind[0] == "list":
        if not isinstance(value, list):
            raise InvoiceError("INVOICE_MALFORMED", "%s must be a list" % path)
        if not value:
            raise InvoiceError("INVOICE_MALFORMED", "%s must not be empty" % path)
        if len(value) > MAX_ITEMS:
            raise InvoiceError("INVOICE_MALFORMED", "%s has more than %d entries" % (path, MAX_ITEMS))
        for i in range(len(value)):
            check_map(value[i], kind[1], "%s[%d]" % (path, i))
    else:
        check_map(value, kind, path)


def check_map(value, table, path):
    """Check that ``value`` is a map with exactly the keys of ``table``, each of its kind."""
    if not isinstance(value, dict):
        raise InvoiceError("INVOICE_MALFORMED", "%s must be a map" % (path or "invoice"))
    for key, name, kind, empty_ok in table:
        sub = path + "." + name if path else name
        if key not in value:
            raise InvoiceError("INVOICE_MALFORMED", "missing field %s (key %d)" % (sub, key))
        _check_value(value[key], kind, empty_ok, sub)
    if len(value) != len(table):
        known = [entry[0] for entry in table]
        extra = sorted([k for k in value if k not in known], key=lambda k: (str(type(k)), k))
        raise InvoiceError("INVOICE_MALFORMED", "unknown field key %r in %s" % (extra[0], path or "invoice"))


def round_half_up(numerator, denominator):
    """Nearest integer to numerator/denominator for non-negative values, halves rounding up."""
    return (2 * numerator + denominator) // (2 * denominator)


def default_profile():
    """Host only: the shipped default profile (seed-tg), for callers that pass no profile. The device
    always passes its installed one, so it never reaches the host-only loader."""
    from protocol import profile_host
    return profile_host.default()


def load_profile(data):
    """Canonical CBOR bytes of a profile -> the checked profile map (PROFILE_INVALID otherwise).
    The check is protocol/profile_check.py, imported here only: a seal never needs it."""
    from protocol import profile_check
    return profile_check.load(data, TYPES, CLASSIFICATIONS)


def compute_groups(items, timestamp, profile=None):
    """Per-group [code, rate_ppm, base, tax] from decoded items, sorted by code (the totals rule)."""
    manifest = (profile or default_profile())["groups"]
    sums = {}
    for i in range(len(items)):
        item = items[i]
        if item[3] == 0:
            raise InvoiceError("AMOUNT_INVALID", "items[%d].quantity must be greater than 0" % i)
        code = item[5]
        try:
            taxgroups.in_force(code, timestamp, manifest)
        except InvoiceError as exc:
            raise InvoiceError("TAX_GROUP_UNKNOWN", "items[%d].tax_group: %s" % (i, exc.detail))
        sums[code] = sums.get(code, 0) + item[3] * item[4]
    groups = []
    for code in sorted(sums):
        rate = taxgroups.in_force(code, timestamp, manifest)[2]
        base = round_half_up(sums[code], QTY_SCALE)
        groups.append([code, rate, base, round_half_up(base * rate, taxgroups.PPM)])
    return groups


def _structure(doc):
    """Steps 3-4 of PROTOCOL.md 6.5: the layout, key 12 included, and the invoice type."""
    if isinstance(doc, dict) and 12 in doc:
        check_map(dict([(k, doc[k]) for k in doc if k != 12]), INVOICE, "")
        check_map(doc[12], CREDIT, "credit")
    else:
        check_map(doc, INVOICE, "")
    if doc[5] not in TYPES:
        raise InvoiceError("INVOICE_TYPE_INVALID", "invoice_type %r is not one of %s" % (doc[5], ", ".join(TYPES)))
    if (doc[5] in CREDIT_TYPES) != (12 in doc):
        raise InvoiceError("INVOICE_MALFORMED", "a %s invoice %s key 12 (credit)"
                           % (doc[5], "needs" if doc[5] in CREDIT_TYPES else "must not carry"))


def check(doc, profile=None):
    """Validate a decoded canonical invoice against a country profile (default: the shipped one,
    host only); return its summary dict or raise InvoiceError / ProfileError."""
    profile = profile or default_profile()
    manifest = profile["groups"]
    _structure(doc)
    timefmt.parse_time(doc[6])
    if doc[7][3] not in CLASSIFICATIONS:
        raise InvoiceError("CLIENT_CLASS_INVALID", "client.classification %r is not one of %s"
                           % (doc[7][3], ", ".join(CLASSIFICATIONS)))
    totals = doc[10]
    currency = totals[4]
    if currency not in profile["currencies"]:
        raise InvoiceError("CURRENCY_INVALID", "totals.currency %r is not a currency of profile %s"
                           % (currency, profile["id"]))
    groups = compute_groups(doc[8], doc[6], profile)
    lines = doc[9]
    for i in range(len(lines)):
        try:
            taxgroups.in_force(lines[i][1], doc[6], manifest)
        except InvoiceError as exc:
            raise InvoiceError("TAX_GROUP_UNKNOWN", "tax_groups[%d].code: %s" % (i, exc.detail))
    want = [g[0] for g in groups]
    taxgroups.check_rules(profile, doc[5], doc[7][3], want)
    got = [line[1] for line in lines]
    if want != got:
        raise InvoiceError("TAX_GROUPS_MISMATCH", "tax_groups must list %s in this order, got %s"
                           % (",".join(want), ",".join(got)))
    for i in range(len(groups)):
        code, rate, base, tax = groups[i]
        line = lines[i]
        if line[3] != rate:
            raise InvoiceError("TAX_RATE_MISMATCH", "tax_groups[%d].rate is %d ppm, %s is %d ppm"
                               % (i, line[3], code, rate))
        if line[4] != base:
            raise InvoiceError("TAX_BASE_MISMATCH", "tax_groups[%d].base_amount is %d, items give %d"
                               % (i, line[4], base))
        if line[5] != tax:
            raise InvoiceError("TAX_AMOUNT_MISMATCH", "tax_groups[%d].tax_amount is %d, expected %d"
                               % (i, line[5], tax))
    subtotal = sum([g[2] for g in groups])
    vat = sum([g[3] for g in groups])
    for key, name, want_value in ((1, "subtotal", subtotal), (2, "total_vat", vat), (3, "total", subtotal + vat)):
        if totals[key] != want_value:
            raise InvoiceError("TOTALS_MISMATCH", "totals.%s is %d, expected %d" % (name, totals[key], want_value))
    paid = 0
    payments = doc[11]
    for i in range(len(payments)):
        if payments[i][4] != currency:
            raise InvoiceError("CURRENCY_INVALID", "payments[%d].currency %r differs from totals.currency %r"
                               % (i, payments[i][4], currency))
        paid += payments[i][2]
    if paid != totals[3]:
        raise InvoiceError("PAYMENTS_MISMATCH", "payments add up to %d, total is %d" % (paid, totals[3]))
    credit = doc.get(12)
    return {"type": doc[5], "timestamp": doc[6], "currency": currency, "subtotal": subtotal,
            "total_vat": vat, "total": subtotal + vat, "groups": [[g[0], g[2], g[3]] for g in groups],
            "lines": groups, "credit": None if credit is None else [credit[1], credit[2]]}


def decode(data, profile=None):
    """Canonical invoice bytes -> (decoded map, summary). Non-canonical bytes are INVOICE_MALFORMED."""
    if len(data) > MAX_INVOICE:
        raise InvoiceError("INVOICE_TOO_LARGE", "invoice is %d bytes, limit %d" % (len(data), MAX_INVOICE))
    try:
        doc = cbor.decode(data)
    except CborError as exc:
        raise InvoiceError("INVOICE_MALFORMED", "not canonical CBOR: %s" % exc.detail)
    return doc, check(doc, profile)
