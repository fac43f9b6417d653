"""UTC time stamps as integers and as the one text form the protocol accepts.

The device clock counts whole seconds since 1970-01-01T00:00:00Z. Invoices and sealed results
show time as ``YYYY-MM-DDTHH:MM:SSZ`` (ISO 8601 / RFC 3339, UTC, no fraction, no offset): one
spelling per instant, so string comparison orders instants and the bytes that get hashed are
unambiguous. MicroPython has no ``datetime``, so the civil-calendar conversion is done here with
Howard Hinnant's days-from-civil algorithm (proleptic Gregorian, exact integer arithmetic).
"""

from protocol.errors import InvoiceError

# Accepted clock range: 2020-01-01 .. 2100-01-01. Outside it a clock is certainly wrong.
MIN_TIME = 1577836800
MAX_TIME = 4102444800


def _days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def format_time(t):
    """Seconds since the epoch -> ``YYYY-MM-DDTHH:MM:SSZ``."""
    days = t // 86400
    secs = t - days * 86400
    y, m, d = _civil_from_days(days)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, m, d, secs // 3600, (secs // 60) % 60, secs % 60)


def _digits(text, start, count):
    part = text[start:start + count]
    if len(part) != count:
        return -1
    for ch in part:
        if ch < "0" or ch > "9":
            return -1
    return int(part)


def parse_time(text, field="timestamp"):
    """``YYYY-MM-DDTHH:MM:SSZ`` -> seconds since the epoch; anything else is INVOICE_TIMESTAMP.

    Round-trips exactly with :func:`format_time`, so a parsed value re-formats to the same text.
    """
    if not isinstance(text, str) or len(text) != 20:
        raise InvoiceError("INVOICE_TIMESTAMP", "%s must be YYYY-MM-DDTHH:MM:SSZ" % field)
    seps = text[4] + text[7] + text[10] + text[13] + text[16] + text[19]
    y = _digits(text, 0, 4)
    mo = _digits(text, 5, 2)
    d = _digits(text, 8, 2)
    h = _digits(text, 11, 2)
    mi = _digits(text, 14, 2)
    s = _digits(text, 17, 2)
    if seps != "--T::Z" or min(y, mo, d, h, mi, s) < 0:
        raise InvoiceError("INVOICE_TIMESTAMP", "%s must be YYYY-MM-DDTHH:MM:SSZ" % field)
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 59):
        raise InvoiceError("INVOICE_TIMESTAMP", "%s is not a real date and time" % field)
    t = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
    if format_time(t) != text:
        raise InvoiceError("INVOICE_TIMESTAMP", "%s is not a real date (day %d of month %d)" % (field, d, mo))
    return t
