"""Exact amounts from JSON (issue 8): the POS's numbers and decimal strings as integers.

The seeds show money both as JSON integers (seed 000: ``"unit_price": 100000``, whole currency
units) and as decimal strings (seed 002: ``"unit_price": "500.00"``). An amount must be exact in
the currency's minor unit, a rate exact in parts per million, a quantity exact in thousandths;
anything else is refused naming the field, never rounded. The arithmetic runs in a Decimal context
of ``_PRECISION`` digits, which is exact for every value that passes the bounds checked first: at
most strictjson.MAX_NUMBER characters, at most ``_MAX_FRACTION`` fractional digits, and a
magnitude below 10^``_MAX_MAGNITUDE`` (every accepted amount is at most
protocol.invoice.MAX_AMOUNT = 10^15 minor units). So a 28-digit default context can no longer
round ``0.1000000000000000000000000000001`` to 0.10, and ``1e999990`` is refused before any work
grows with its exponent.
"""

import re
from decimal import Context, Decimal, InvalidOperation

from protocol import invoice
from hostd.errors import InvalidPayload

_NUMBER = re.compile(r"\A[0-9]{1,40}(\.[0-9]{1,40})?\Z")
_MAX_MAGNITUDE = 16          # values at or above 10^16 (before scaling) are refused outright
_MAX_FRACTION = 40           # more fractional digits than this can never be exact in any unit here
_PRECISION = 100             # > 40 + 16 + 6 digits: every product below is exact
_EXACT = Context(prec=_PRECISION, traps=[InvalidOperation])


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
        raise _too_large(path, value)
    return number


def _too_large(path, value):
    return InvalidPayload("%s=%s is too large (amounts are at most %d minor units)" % (path, value, invoice.MAX_AMOUNT),
                          path)


def scaled(value, scale, path, unit):
    """``value`` (JSON int, Decimal or decimal string) x ``scale`` as an exact int, or InvalidPayload.
    A JSON integer is exact as it is: only its magnitude is checked (the same bound). Otherwise the
    arithmetic runs in the exact context by its own methods, not by switching the thread's context
    (a quarter of the time, for the dozen amounts of every invoice)."""
    if type(value) is int:   # bool is refused by _decimal
        if abs(value) >= 10 ** _MAX_MAGNITUDE:
            raise _too_large(path, value)
        return value * scale
    number = _decimal(value, path)
    if number.as_tuple().exponent < -_MAX_FRACTION:
        raise InvalidPayload("%s=%s is not exact in %s" % (path, value, unit), path)
    product = _EXACT.multiply(number, scale)
    if product != _EXACT.to_integral_value(product):
        raise InvalidPayload("%s=%s is not exact in %s" % (path, value, unit), path)
    return int(product)


def money_text(minor, digits=2):
    """Minor units -> the decimal string the canonical JSON carries (``47414`` -> ``"474.14"``)."""
    whole, part = divmod(minor, 10 ** digits)
    return "%d.%0*d" % (whole, digits, part) if digits else str(whole)


def quantity_text(thousandths):
    whole, part = divmod(thousandths, invoice.QTY_SCALE)
    return str(whole) if not part else ("%d.%03d" % (whole, part)).rstrip("0")


def rate_text(ppm):
    whole, part = divmod(ppm, 1000000)
    return ("%d.%06d" % (whole, part)).rstrip("0").rstrip(".") if part else str(whole)
