"""JSON invoice (the POS's words) -> canonical invoice bytes (what the device hashes and seals).

The seeds show money both as JSON integers (seed 000: ``"unit_price": 100000``) and as decimal
strings (seed 002: ``"unit_price": "500.00"``), and rates as ``"0.16"`` or ``0.16``. The body is
read once, by hostd/intake/strictjson.py (UTF-8 without BOM, no duplicate keys, bounded depth and
number length), so nothing ever passes through a binary float (DESIGN-NOTES section 2.7).

Exactness (issue 8, hostd/intake/amounts.py): an amount must be exact in the currency's minor
unit, a rate exact in parts per million, a quantity exact in thousandths, and anything else is
refused naming the field, never rounded.

A credit type (``credit_note``, ``export_credit``) carries a 12th field, last: ``credit``
``{original_fiscal_number, reason}``, the original it credits (canonical key 12, signed into the
record by the device); any other type must not (PROTOCOL.md 6.1, issue 11).

Before the strict order check, ``hostd.intake.shapes.complete`` applies the documented
compatibility rules (KutaPay's example payload, merchant fields from the daemon's settings) and
gives an invoice without a ``timestamp`` the time it is accepted (UTC, to the second), so the
canonical bytes and their hash carry that time; ``Parsed.stamped`` says so, and ``Parsed.text()``
is then the document as sealed, its timestamp included.

The result is checked with the very function the device runs (``protocol.invoice.check``), so the
host refuses early what the device would refuse, and the device still checks again.
"""

import re

from protocol import invoice, taxgroups
from protocol.errors import InvoiceError
from hostd.errors import InvalidPayload
from hostd.intake import fastcbor, strictjson
from hostd.intake.amounts import scaled
from hostd.intake.shapes import complete

ORDER = [entry[1] for entry in invoice.INVOICE]
CREDIT_KEY, CREDIT_FIELD, CREDIT_TABLE, _ = invoice.OPTIONAL[0]


def _map(obj, table, path, money_scale):
    if not isinstance(obj, dict):
        raise InvalidPayload("%s must be an object" % path, path)
    out = {}
    for key, name, kind, _ in table:
        sub = "%s.%s" % (path, name) if path else name
        if name not in obj:
            raise InvalidPayload("missing field %s" % sub, sub)
        value = obj[name]
        if kind == "int":
            if name == "quantity":
                out[key] = scaled(value, invoice.QTY_SCALE, sub, "thousandths")
            elif name == "rate":
                out[key] = scaled(value, taxgroups.PPM, sub, "parts per million")
            else:
                out[key] = scaled(value, money_scale, sub, "the currency's minor unit")
        elif isinstance(kind, tuple) and kind[0] == "list":
            if not isinstance(value, list):
                raise InvalidPayload("%s must be an array" % sub, sub)
            if len(value) > invoice.MAX_ITEMS:   # before mapping any of them
                raise InvalidPayload("%s has %d entries; at most %d" % (sub, len(value), invoice.MAX_ITEMS), sub)
            out[key] = [_map(value[i], kind[1], "%s[%d]" % (sub, i), money_scale) for i in range(len(value))]
        elif isinstance(kind, tuple):
            out[key] = _map(value, kind, sub, money_scale)
        else:
            out[key] = value
    extra = [k for k in obj if k not in [entry[1] for entry in table]]
    if extra:
        name = "%s.%s" % (path, extra[0]) if path else extra[0]
        raise InvalidPayload("unknown field %s" % name, name)
    return out


class Parsed:
    """One accepted invoice: its canonical bytes, the device-side summary, the JSON document as
    the POS sent it (read once; completed by the compatibility rule, and dated when it had no
    timestamp), the columns the store files it under, and for a credit type the fiscal number of
    the original it credits (``original``)."""

    def __init__(self, canonical, summary, doc, stamped=False):
        self.canonical = canonical
        self.summary = summary
        self.doc = doc
        self.stamped = stamped   # the timestamp was left out and filled in at acceptance
        client = doc["client"]
        self.original = doc[CREDIT_FIELD]["original_fiscal_number"] if CREDIT_FIELD in doc else None
        self.columns = {"merchant_nif": doc["merchant_nif"], "outlet_id": doc["outlet_id"],
                        "terminal": "%s/%s" % (doc["outlet_id"], doc["pos_terminal_id"]), "client_nif": client.get("nif"),
                        "invoice_type": doc["invoice_type"], "timestamp": doc["timestamp"]}

    def text(self):
        """The JSON text of the document as sealed (completed, its timestamp included)."""
        return strictjson.dumps(self.doc)


def parse(raw, merchant=None, now=None, sent=None):
    """JSON bytes (or text) -> (canonical map, document, stamped); checks the top-level field order
    (seed 002). ``now``: the timestamp an invoice without one gets (default: the current time);
    ``stamped`` says it got it. ``sent``: what strictjson reads ``raw`` as, when the caller has
    it already (a batch item the daemon wrote itself from a body strictjson read), so the
    document is not read twice."""
    if sent is None:
        sent = strictjson.loads(raw)
    doc = complete(sent, merchant, now)
    if not isinstance(doc, dict):
        raise InvalidPayload("invoice must be a JSON object")
    names = list(doc)
    order = ORDER + ([CREDIT_FIELD] if CREDIT_FIELD in doc else [])
    for i, name in enumerate(names):
        if i >= len(order) or name != order[i]:
            want = order[i] if i < len(order) else "(end of object)"
            field = want if want in order else name   # the field that belongs here
            raise InvalidPayload("field %d must be %s, found %s (order: %s)" % (i + 1, want, name, ", ".join(order)),
                                 field)
    if len(names) < len(order):
        raise InvalidPayload("missing field %s" % order[len(names)], order[len(names)])
    currency = doc["totals"].get("currency") if isinstance(doc["totals"], dict) else None
    if not isinstance(currency, str) or currency not in taxgroups.CURRENCIES:
        raise InvalidPayload("totals.currency %r is not one of %s" % (currency, ", ".join(sorted(taxgroups.CURRENCIES))),
                             "totals.currency")
    stamped = "timestamp" not in sent
    credit_type = doc["invoice_type"] in invoice.CREDIT_TYPES
    if credit_type != (CREDIT_FIELD in doc):
        raise InvalidPayload("a %s %s the field credit {original_fiscal_number, reason}" % (
            doc["invoice_type"], "names its original in" if credit_type else "must not carry"), CREDIT_FIELD)
    mapping = _map(dict((k, v) for k, v in doc.items() if k != CREDIT_FIELD), invoice.INVOICE, "",
                   10 ** taxgroups.CURRENCIES[currency])
    if credit_type:
        mapping[CREDIT_KEY] = _map(doc[CREDIT_FIELD], CREDIT_TABLE, CREDIT_FIELD, 1)
    return mapping, doc, stamped


def parse_invoice(raw, merchant=None, now=None, sent=None):
    """JSON invoice -> Parsed. Refuses with InvalidPayload naming the field. ``merchant``
    (hostd/intake/merchant.py) fills the merchant fields a payload leaves out, ``now`` (default:
    the current UTC time) the timestamp; ``sent`` as for ``parse``. The canonical bytes are the
    reference codec's, made by the host's faster encoder (hostd/intake/fastcbor.py)."""
    mapping, doc, stamped = parse(raw, merchant, now, sent)
    try:
        summary = invoice.check(mapping)
    except InvoiceError as exc:
        raise InvalidPayload("%s: %s" % (exc.name, exc.detail), _field_of(exc.detail))
    return Parsed(fastcbor.encode(mapping), summary, doc, stamped)


def to_canonical(raw, now=None):
    """JSON invoice -> (canonical bytes, summary). Refuses with InvalidPayload naming the field;
    an invoice without a timestamp gets ``now`` (default: the current UTC time)."""
    parsed = parse_invoice(raw, now=now)
    return parsed.canonical, parsed.summary


FIELDS = ORDER + [entry[1] for entry in invoice.OPTIONAL]


def _field_of(detail):
    """The first invoice field path a device-side detail names, for the API's ``field`` (the
    detail "a credit_note invoice needs key 12 (credit)" names ``credit``, not ``a``); None when it
    names none."""
    for match in re.finditer(r"[a-z_]+(\[\d+\])?(\.[a-z_]+)*", detail):
        if re.match(r"[a-z_]+", match.group(0)).group(0) in FIELDS:
            return match.group(0)
    return None
