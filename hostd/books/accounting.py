"""The accounting export of seed 000 section 3 (issue 12): ledger entries for a period.

``{period, currency, entries: [{account_code, invoice_ref, amount, tax_group, fiscal_number}]}``,
one entry per sealed invoice and tax group of the period (``YYYY-MM`` or ``YYYY-MM-DD``, on the
invoice's own timestamp) in one currency. ``amount`` is the group's base + tax as a decimal
string in currency units (``"1160.00"``, exact; negative for credit notes); ``invoice_ref`` is the
reference another system filed the invoice under (an ERP connector reference) or else its fiscal
number.

Account codes come from a mapping (``fiscal daemon --accounts FILE``, JSON with the keys of
``DEFAULT_ACCOUNTS``). The most specific rule wins: the client classification, then the first
payment method, then the tax group, then ``default``. The defaults are receivable accounts in the
OHADA chart the seed uses (411xxx): 411001 standard-rate goods, 411002 exempt, 411000 otherwise.

NDJSON (``format=ndjson``) streams the same entries one per line between a header line
(``{"type": "header", "schema": "fiscal-accounting/1", "device_id", "period", "currency",
"first_counter", "last_counter"}``) and a trailer line (``{"type": "trailer", "count",
"chain_head": {seq, hash}, "sha256"}``); ``sha256`` is over every byte before the trailer, so
``check_ndjson`` detects a file cut anywhere.
"""

import hashlib
import json

from protocol import cbor, invoice, taxgroups
from hostd.errors import InvalidPayload
from hostd.intake.amounts import money_text

SCHEMA = "fiscal-accounting/1"
DEFAULT_ACCOUNTS = {"default": "411000", "tax_group": {"TG02": "411001", "TG01": "411002"},
                    "payment_method": {}, "client_class": {}}


def load_accounts(doc):
    """A mapping from a parsed JSON object, checked; keys missing take the defaults."""
    if not isinstance(doc, dict):
        raise InvalidPayload("accounts mapping must be a JSON object", "accounts")
    out = {"default": doc.get("default", DEFAULT_ACCOUNTS["default"])}
    for key in ("tax_group", "payment_method", "client_class"):
        table = doc.get(key, DEFAULT_ACCOUNTS[key])
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise InvalidPayload("accounts.%s must map names to account codes" % key, "accounts." + key)
        out[key] = table
    return out


def account_for(accounts, group, method, client_class):
    for table, name in (("client_class", client_class), ("payment_method", method), ("tax_group", group)):
        if name in accounts[table]:
            return accounts[table][name]
    return accounts["default"]


def entries_of(row, accounts):
    """Ledger entries of one filed invoice row."""
    doc = cbor.decode(row["canonical"])
    digits = taxgroups.CURRENCIES[doc[10][4]]
    sign = -1 if doc[5] in invoice.CREDIT_TYPES else 1
    method = doc[11][0][1] if doc[11] else None
    out = []
    for line in doc[9]:
        amount = line[4] + line[5]
        out.append({"account_code": account_for(accounts, line[1], method, doc[7][3]),
                    "invoice_ref": row["reference"] or row["fiscal_number"],
                    "amount": ("-" if sign < 0 and amount else "") + money_text(amount, digits),
                    "tax_group": line[1], "fiscal_number": row["fiscal_number"]})
    return out


def period_bounds(period):
    """``YYYY-MM`` or ``YYYY-MM-DD`` -> (first, last) timestamp text, or InvalidPayload."""
    parts = period.split("-") if isinstance(period, str) else []
    if len(parts) not in (2, 3) or not all(p.isdigit() and p.isascii() for p in parts) or len(parts[0]) != 4 \
            or any(len(p) != 2 for p in parts[1:]) or not 1 <= int(parts[1]) <= 12 \
            or (len(parts) == 3 and not 1 <= int(parts[2]) <= 31):
        raise InvalidPayload("period must be YYYY-MM or YYYY-MM-DD", "period")
    return period + ("-01" if len(parts) == 2 else "") + "T00:00:00Z", period + ("-31" if len(parts) == 2 else "") \
        + "T23:59:59Z"


def document(period, currency, entries):
    return {"period": period, "currency": currency, "entries": entries}


def ndjson(header, entries, chain_head):
    """NDJSON bytes: header, entries, trailer (module docstring)."""
    lines = [json.dumps(dict(header, type="header", schema=SCHEMA), sort_keys=True)]
    lines.extend(json.dumps(dict(e, type="entry"), sort_keys=True) for e in entries)
    body = ("\n".join(lines) + "\n").encode()
    trailer = {"type": "trailer", "count": len(entries), "chain_head": chain_head,
               "sha256": hashlib.sha256(body).hexdigest()}
    return body + (json.dumps(trailer, sort_keys=True) + "\n").encode()


def check_ndjson(data):
    """The trailer of an NDJSON export, or InvalidPayload saying how the file was cut or altered."""
    if not data.endswith(b"\n"):
        raise InvalidPayload("the file does not end with a complete line: it was cut", "trailer")
    body, _, last = data[:-1].rpartition(b"\n")
    try:
        trailer = json.loads(last)
    except ValueError:
        raise InvalidPayload("the last line is not a trailer: the file was cut", "trailer")
    if not isinstance(trailer, dict) or trailer.get("type") != "trailer":
        raise InvalidPayload("the last line is not a trailer: the file was cut", "trailer")
    body += b"\n"
    if hashlib.sha256(body).hexdigest() != trailer.get("sha256"):
        raise InvalidPayload("the lines before the trailer do not match its sha256: lines were cut or altered",
                             "sha256")
    count = sum(1 for line in body.splitlines() if json.loads(line).get("type") == "entry")
    if count != trailer.get("count"):
        raise InvalidPayload("the trailer counts %s entries, the file has %d" % (trailer.get("count"), count), "count")
    return trailer
