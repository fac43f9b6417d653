"""The list query of GET /api/v1/invoices (seed 002), built from the query parameters.

List filters: ``merchant_nif``, ``outlet_id``, ``date_range`` (``FROM..TO``, ISO dates or times,
either side optional, on the invoice timestamp), ``client.nif``, ``status`` (the dgi_status),
``fiscal_number``; pagination ``page`` (from 1) and ``per_page`` (1-200, default 50); ``sort``
``timestamp`` or ``fiscal_number`` (default), ``-`` prefix for descending.
"""

import re

from hostd.errors import InvalidPayload

_DIGITS = re.compile(r"\A[0-9]{1,10}\Z")   # ASCII digits only: str.isdigit() also takes "²"

MAX_PER_PAGE = 200


def _int(params, name, default, low, high):
    raw = params.get(name)
    if raw is None:
        return default
    if not _DIGITS.match(raw) or not low <= int(raw) <= high:
        raise InvalidPayload("%s must be an integer from %d to %d" % (name, low, high), name)
    return int(raw)


def list_query(params):
    """(sql, args, page, per_page) for GET /api/v1/invoices from the query parameters."""
    where, args = [], []
    for param, column in (("merchant_nif", "merchant_nif"), ("outlet_id", "outlet_id"),
                          ("client.nif", "client_nif"), ("status", "dgi_status"), ("fiscal_number", "fiscal_number")):
        if param in params:
            where.append("%s = ?" % column)
            args.append(params[param])
    if "date_range" in params:
        parts = params["date_range"].split("..")
        if len(parts) != 2:
            raise InvalidPayload("date_range must be FROM..TO (either side may be empty)", "date_range")
        if parts[0]:
            where.append("timestamp >= ?")
            args.append(parts[0])
        if parts[1]:
            where.append("timestamp <= ?")
            args.append(parts[1] + ("T23:59:59Z" if len(parts[1]) == 10 else ""))
    sort = params.get("sort", "fiscal_number")
    column = {"fiscal_number": "counter", "timestamp": "timestamp"}.get(sort.lstrip("-"))
    if column is None:
        raise InvalidPayload("sort must be timestamp or fiscal_number (prefix - for descending)", "sort")
    page = _int(params, "page", 1, 1, 10 ** 9)
    per_page = _int(params, "per_page", 50, 1, MAX_PER_PAGE)
    sql = "SELECT * FROM invoices%s ORDER BY %s %s, counter LIMIT ? OFFSET ?" % (
        " WHERE " + " AND ".join(where) if where else "", column, "DESC" if sort.startswith("-") else "ASC")
    return sql, args + [per_page, (page - 1) * per_page], page, per_page
