"""What is shown of a closure and what a closure bundle holds, as pure functions (issue 11).

A CLOSURE record (PROTOCOL.md 7.10) carries figures in minor units, per currency: per group the
sales base and tax and the credit base and tax of the period, and the perpetual grand totals
(NF525 PerpetualAmount, credits negative, and PerpetualAbsoluteAmount, credits positive). An X is
the same figures unsigned. ``summary`` turns either into the seed 004 closure summary: revenue,
totals excluding and including tax, per group, in currency units as text (``"1160.00"``) and in
minor units, never a float.

A bundle (``bundle``) is one JSON file per closure in the state directory, as the 004 closure
e-mail carries it: the summary, the closure record and its hash, the device's id and key, and a
CSV of every invoice and credit note of the period (hostd/books/csvio.py columns). Its SHA-256 is
kept in the store and shown with the report, and a ``.sha256`` file beside it (``sha256sum -c``).
"""

import hashlib
import json

from protocol import record, taxgroups
from hostd.books import csvio

BUNDLE_FORMAT = "fiscal-closure-1"
KIND_NAMES = {"Z": "daily", "M": "monthly", "Y": "yearly", "X": "interim"}


def money(minor, currency):
    """Minor units as signed text with the currency's decimals: -150 CDF -> "-1.50"."""
    digits = taxgroups.CURRENCIES.get(currency, 2)
    sign, minor = ("-", -minor) if minor < 0 else ("", minor)
    whole, part = divmod(minor, 10 ** digits)
    return sign + ("%d.%0*d" % (whole, digits, part) if digits else str(whole))


def _amounts(currency, **minor):
    return dict([(k, money(v, currency)) for k, v in minor.items()] +
                [(k + "_minor", v) for k, v in minor.items()])


def summary(fields, device_id):
    """The JSON summary of CLOSURE (or X) ``fields``: period, counters, counts, and per currency the
    revenue and its groups. ``net`` counts credit notes negative."""
    first, last = fields[record.K_FISCAL]
    out = {"kind": fields[record.K_KIND], "name": KIND_NAMES.get(fields[record.K_KIND], fields[record.K_KIND]),
           "period": fields.get(record.K_PERIOD), "device_id": device_id,
           "first_fiscal_number": record.fiscal_number(device_id, first) if first else None,
           "last_fiscal_number": record.fiscal_number(device_id, last) if last else None,
           "records": {"first_seq": fields[record.K_RANGE][0], "last_seq": fields[record.K_RANGE][1]},
           "counts": dict((t, n) for t, n in fields[record.K_COUNTS]),
           "currencies": []}
    if record.K_MERKLE in fields:
        out["merkle_root"] = bytes(fields[record.K_MERKLE]).hex()
    for currency, perpetual, perpetual_abs, groups in fields[record.K_FIGURES]:
        rows, sb, st, cb, ct = [], 0, 0, 0, 0
        for code, sales_base, sales_tax, credit_base, credit_tax in groups:
            rows.append(dict(code=code, **_amounts(currency, sales_base=sales_base, sales_tax=sales_tax,
                                                   credit_base=credit_base, credit_tax=credit_tax,
                                                   net_base=sales_base - credit_base, net_tax=sales_tax - credit_tax)))
            sb, st, cb, ct = sb + sales_base, st + sales_tax, cb + credit_base, ct + credit_tax
        entry = {"currency": currency, "groups": rows}
        entry.update(_amounts(currency, sales_excl_tax=sb, sales_tax=st, sales_incl_tax=sb + st,
                              credits_excl_tax=cb, credits_tax=ct, credits_incl_tax=cb + ct,
                              revenue_excl_tax=sb - cb, revenue_tax=st - ct, revenue_incl_tax=sb + st - cb - ct,
                              perpetual_total=perpetual, perpetual_absolute=perpetual_abs))
        out["currencies"].append(entry)
    return out


def period_csv(invoice_rows):
    """The CSV of every filed invoice and credit note among ``invoice_rows`` (store rows)."""
    return csvio.write([r for row in invoice_rows if row["canonical"] is not None for r in csvio.rows_of(row)])


def bundle(closure_row, fields, device, invoice_rows, missing):
    """(file bytes, SHA-256 hex) of the bundle of one filed closure. ``device`` is the store's
    device meta (id and key); ``missing`` counts the period's invoices the store holds only as
    records (their content was lost with a store: the CSV cannot show them)."""
    rec = bytes(closure_row["record"])
    doc = {"format": BUNDLE_FORMAT, "summary": summary(fields, device["device_id"]),
           "closure": {"seq": closure_row["seq"], "record": rec.hex(), "hash": bytes(closure_row["hash"]).hex(),
                       "prev": bytes(fields[record.K_PREV]).hex()},
           "device": {"device_id": device["device_id"], "public_key": device["public_key"],
                      "certificate": device.get("certificate")},
           "invoices_without_content": missing,
           "csv": period_csv(invoice_rows)}
    data = (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode()
    return data, hashlib.sha256(data).hexdigest()


def technical_entry(seq, fields, rtype):
    """(seq, type name, time, event name, detail JSON) of a non-invoice record for the technical log."""
    names = {record.TIME: "time", record.POWER_UP: "power_up", record.CHECKPOINT: "checkpoint",
             record.EVENT: "event", record.CLOSURE: "closure"}
    detail = {}
    name = None
    if rtype == record.EVENT:
        name = fields.get(record.K_EVENT)
        if record.K_DETAIL in fields:
            detail["detail"] = fields[record.K_DETAIL]
    elif rtype == record.POWER_UP:
        name, detail["firmware"] = "power_up", fields.get(record.K_FIRMWARE)
    elif rtype == record.TIME:
        name = "clock_set"
        if record.K_PREVIOUS_TIME in fields:
            detail["previous_time"] = fields[record.K_PREVIOUS_TIME]
    elif rtype == record.CHECKPOINT:
        name = "checkpoint"
        if record.K_ARCHIVED in fields:
            name, detail["archived_seq"] = "archived", fields[record.K_ARCHIVED][0]
    elif rtype == record.CLOSURE:
        name, detail["period"] = "closure_" + fields[record.K_KIND], fields[record.K_PERIOD]
    return (seq, names.get(rtype, str(rtype)), fields[record.K_TIME], name,
            json.dumps(detail, sort_keys=True, default=_text))


def _text(value):
    return bytes(value).hex()
