"""JSON invoice (the POS's words) -> canonical invoice bytes (what the device hashes and seals).

The seeds show money both as JSON integers (seed 000: ``"unit_price": 100000``) and as decimal
strings (seed 002: ``"unit_price": "500.00"``), and rates as ``"0.16"`` or ``0.16``. JSON is
parsed with ``parse_float=Decimal`` so nothing ever passes through a binary float (DESIGN-NOTES
section 2.7). An amount must be exact in the currency's minor unit, a rate exact in parts per
million, a quantity exact in thousandths; anything else is refused naming the field. The result
is checked with the very function the device runs (``protocol.invoice.check``), so the host refuses
early what the device would refuse, and the device still checks again.
"""

import json
import re
from decimal import Decimal, InvalidOperation

from protocol import cbor, invoice, taxgroups
from protocol.errors import InvoiceError
from hostd.errors import InvalidPayload

_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?$")
ORDER = [entry[1] for entry in invoice.INVOICE]


def _decimal(value, path):
    if isinstance(value, bool) or value is None:
        raise InvalidPayload("%s must be a number or a decimal string" % path, path)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str) and _NUMBER.match(value):
        return Decimal(value)
    raise InvalidPayload("%s must be a non-negative number or decimal string, got %r" % (path, value), path)


def _scaled(value, scale, path, unit):
    try:
        scaled = _decimal(value, path) * scale
        if scaled != scaled.to_integral_value():
            raise InvalidPayload("%s=%s is not exact in %s" % (path, value, unit), path)
        return int(scaled)
    except InvalidOperation:
        raise InvalidPayload("%s is not a valid number" % path, path)


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


def parse(raw):
    """JSON text or bytes -> canonical map; checks top-level field order (seed 002)."""
    try:
        pairs = json.loads(raw, parse_float=Decimal, object_pairs_hook=lambda p: p)
    except ValueError as exc:
        raise InvalidPayload("body is not valid JSON: %s" % exc)
    if not isinstance(pairs, list):
        raise InvalidPayload("invoice must be a JSON object")
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise InvalidPayload("duplicate field in invoice")
    for i, name in enumerate(names):
        if i >= len(ORDER) or name != ORDER[i]:
            want = ORDER[i] if i < len(ORDER) else "(end of object)"
            field = want if want in ORDER else name   # the field that belongs here
            raise InvalidPayload("field %d must be %s, found %s (order: %s)" % (i + 1, want, name, ", ".join(ORDER)),
                                 field)
    if len(names) < len(ORDER):
        raise InvalidPayload("missing field %s" % ORDER[len(names)], ORDER[len(names)])
    doc = json.loads(raw, parse_float=Decimal)
    currency = doc.get("totals", {}).get("currency") if isinstance(doc.get("totals"), dict) else None
    if currency not in taxgroups.CURRENCIES:
        raise InvalidPayload("totals.currency %r is not one of %s" % (currency, ", ".join(sorted(taxgroups.CURRENCIES))),
                             "totals.currency")
    return _map(doc, invoice.INVOICE, "", 10 ** taxgroups.CURRENCIES[currency])


def to_canonical(raw):
    """JSON invoice -> (canonical bytes, summary). Refuses with InvalidPayload naming the field."""
    mapping = parse(raw)
    try:
        summary = invoice.check(mapping)
    except InvoiceError as exc:
        raise InvalidPayload("%s: %s" % (exc.name, exc.detail), _field_of(exc.detail))
    return cbor.encode(mapping), summary


def _field_of(detail):
    """The dotted field path at the start of a device-side detail, for the API's ``field``."""
    match = re.search(r"([a-z_]+(\[\d+\])?(\.[a-z_]+)*)", detail)
    return match.group(1) if match else None
