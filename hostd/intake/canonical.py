"""JSON invoice (the POS's words) -> canonical invoice bytes (what the device hashes and seals).

The seeds show money both as JSON integers (seed 000: ``"unit_price": 100000``) and as decimal
strings (seed 002: ``"unit_price": "500.00"``), and rates as ``"0.16"`` or ``0.16``. The body is
read once, by hostd/intake/strictjson.py (UTF-8 without BOM, no duplicate keys, bounded depth and
number length), so nothing ever passes through a binary float (DESIGN-NOTES section 2.7).

Exactness (issue 8): an amount must be exact in the currency's minor unit, a rate exact in parts
per million, a quantity exact in thousandths, and anything else is refused naming the field, never
rounded. The arithmetic runs in a Decimal context of ``_PRECISION`` digits, which is exact for
every value that passes the bounds checked first: at most strictjson.MAX_NUMBER characters, at
most ``_MAX_FRACTION`` fractional digits, and a magnitude below 10^``_MAX_MAGNITUDE`` (every
accepted amount is at most protocol.invoice.MAX_AMOUNT = 10^15 minor units). So a 28-digit
default context can no longer round ``0.1000000000000000000000000000001`` to 0.10, and
``1e999990`` is refused before any work grows with its exponent.

The result is checked with the very function the device runs (``protocol.invoice.check``), so the
host refuses early what the device would refuse, and the device still checks again.
"""

import re
from decimal import Context, Decimal, InvalidOperation, localcontext

from protocol import cbor, invoice, taxgroups
from protocol.errors import InvoiceError
from hostd.intake import strictjson
from hostd.errors import InvalidPayload

_NUMBER = re.compile(r"\A[0-9]{1,40}(\.[0-9]{1,40})?\Z")
_MAX_MAGNITUDE = 16          # values at or above 10^16 (before scaling) are refused outright
_MAX_FRACTION = 40           # more fractional digits than this can never be exact in any unit here
_PRECISION = 100             # > 40 + 16 + 6 digits: every product below is exact
ORDER = [entry[1] for entry in invoice.INVOICE]


def _decimal(value, path):
    if isinstance(value, bool) or value is None:
        raise InvalidPayload("%s must be a number or a decimal string" % path, path)
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _NUMBER.match(value):
        number = Decimal(value)
    else:
        raise InvalidPayload("%s must be a non-negative number or decimal string, got %r" % (path, value), path)
    if not number.is_finite():
        raise InvalidPayload("%s is not a finite number" % path, path)
    if number and number.adjusted() >= _MAX_MAGNITUDE:
        raise InvalidPayload("%s=%s is too large (amounts are at most %d minor units)" % (path, value, invoice.MAX_AMOUNT),
                             path)
    return number


def _scaled(value, scale, path, unit):
    number = _decimal(value, path)
    if number.as_tuple().exponent < -_MAX_FRACTION:
        raise InvalidPayload("%s=%s is not exact in %s" % (path, value, unit), path)
    with localcontext(Context(prec=_PRECISION, traps=[InvalidOperation])):
        scaled = number * scale
        if scaled != scaled.to_integral_value():
            raise InvalidPayload("%s=%s is not exact in %s" % (path, value, unit), path)
        return int(scaled)


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
                out[key] = _scaled(value, invoice.QTY_SCALE, sub, "thousandths")
            elif name == "rate":
                out[key] = _scaled(value, taxgroups.PPM, sub, "parts per million")
            else:
                out[key] = _scaled(value, money_scale, sub, "the currency's minor unit")
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
    the POS sent it (read once), and the columns the store files it under."""

    def __init__(self, canonical, summary, doc):
        self.canonical = canonical
        self.summary = summary
        self.doc = doc
        client = doc["client"]
        self.columns = {"merchant_nif": doc["merchant_nif"], "outlet_id": doc["outlet_id"],
                        "terminal": "%s/%s" % (doc["outlet_id"], doc["pos_terminal_id"]), "client_nif": client.get("nif"),
                        "invoice_type": doc["invoice_type"], "timestamp": doc["timestamp"]}


def parse(raw):
    """JSON bytes (or text) -> (canonical map, document); checks the top-level field order (seed 002)."""
    doc = strictjson.loads(raw)
    if not isinstance(doc, dict):
        raise InvalidPayload("invoice must be a JSON object")
    names = list(doc)
    for i, name in enumerate(names):
        if i >= len(ORDER) or name != ORDER[i]:
            want = ORDER[i] if i < len(ORDER) else "(end of object)"
            field = want if want in ORDER else name   # the field that belongs here
            raise InvalidPayload("field %d must be %s, found %s (order: %s)" % (i + 1, want, name, ", ".join(ORDER)),
                                 field)
    if len(names) < len(ORDER):
        raise InvalidPayload("missing field %s" % ORDER[len(names)], ORDER[len(names)])
    currency = doc["totals"].get("currency") if isinstance(doc["totals"], dict) else None
    if not isinstance(currency, str) or currency not in taxgroups.CURRENCIES:
        raise InvalidPayload("totals.currency %r is not one of %s" % (currency, ", ".join(sorted(taxgroups.CURRENCIES))),
                             "totals.currency")
    return _map(doc, invoice.INVOICE, "", 10 ** taxgroups.CURRENCIES[currency]), doc


def parse_invoice(raw):
    """JSON invoice -> Parsed. Refuses with InvalidPayload naming the field."""
    mapping, doc = parse(raw)
    try:
        summary = invoice.check(mapping)
    except InvoiceError as exc:
        raise InvalidPayload("%s: %s" % (exc.name, exc.detail), _field_of(exc.detail))
    return Parsed(cbor.encode(mapping), summary, doc)


def to_canonical(raw):
    """JSON invoice -> (canonical bytes, summary). Refuses with InvalidPayload naming the field."""
    parsed = parse_invoice(raw)
    return parsed.canonical, parsed.summary


def _field_of(detail):
    """The dotted field path at the start of a device-side detail, for the API's ``field``."""
    match = re.search(r"([a-z_]+(\[\d+\])?(\.[a-z_]+)*)", detail)
    return match.group(1) if match else None
