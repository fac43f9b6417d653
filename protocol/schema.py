"""The record schema of PROTOCOL.md section 7.1, as data, and the checks a verifier applies to one
record on its own (no chain): exact CBOR types, no unknown keys, field sizes, the shape of credit,
closure and checkpoint fields, and the invoice amounts rule (groups sorted, non-empty,
non-negative, rates from the profile, tax rounded as section 6.3, total the sum). Each violation
raises VerifyError with its own sentence naming the record, the key and the rule (VERIFY_SCHEMA or
VERIFY_AMOUNTS).
"""

from protocol import closure, invoice, record, taxgroups, timefmt
from protocol.errors import CloseError, VerifyError

TYPE_NAMES = {record.INVOICE: "invoice", record.TIME: "time", record.POWER_UP: "power_up",
              record.CHECKPOINT: "checkpoint", record.EVENT: "event", record.CLOSURE: "closure"}

# key: (name, kind, required); kinds: "int", "nat" (int >= 0), "str", "bytes16", "bytes32", "list",
# "map", "archived", "pair" ([nat, nat]). Keys 1-4 and 6 are common to every type.
COMMON = {1: ("type", "nat", True), 2: ("seq", "nat", True), 3: ("counter", "nat", True),
          4: ("time", "nat", True), 6: ("device", "str", True)}
BY_TYPE = {
    record.INVOICE: {0: ("request_id", "bytes16", True), 7: ("invoice_hash", "bytes32", True),
                     9: ("invoice_type", "str", True), 10: ("groups", "list", True),
                     11: ("total", "nat", True), 12: ("currency", "str", True),
                     17: ("original", "nat", False), 18: ("credit_root", "bytes32", False)},
    record.TIME: {13: ("previous_time", "nat", False)},
    record.POWER_UP: {15: ("firmware", "str", True)},
    record.CHECKPOINT: {5: ("prev", "bytes32", True), 16: ("totals", "list", True),
                        18: ("credit_root", "bytes32", False), 19: ("archived", "archived", False),
                        31: ("closed", "list", False), 32: ("profile", "bytes32", False)},
    record.EVENT: {20: ("event", "str", True), 21: ("detail", "map", False)},
    record.CLOSURE: {5: ("prev", "bytes32", True), 22: ("kind", "str", True), 23: ("period", "str", True),
                     24: ("range", "pair", True), 25: ("fiscal", "pair", True), 26: ("counts", "list", True),
                     27: ("figures", "list", True), 28: ("merkle", "bytes32", True),
                     29: ("chain", "bytes32", True), 30: ("end", "bytes32", False)},
}


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)   # bool is an int in CPython only


def fail(name, index, text):
    raise VerifyError(name, "record %d (index %d): %s" % (index + 1, index, text), index)


def _kind_ok(value, kind):
    if kind == "int":
        return is_int(value)
    if kind == "nat":
        return is_int(value) and value >= 0
    if kind == "str":
        return isinstance(value, str) and len(value) > 0
    if kind == "bytes16" or kind == "bytes32":
        return isinstance(value, bytes)
    if kind == "list":
        return isinstance(value, list)
    if kind == "map":
        return isinstance(value, dict) and all([is_int(k) for k in value])
    if kind == "pair":
        return isinstance(value, list) and len(value) == 2 and all([is_int(v) and v >= 0 for v in value])
    return (isinstance(value, list) and len(value) == 2 and is_int(value[0]) and value[0] > 0
            and isinstance(value[1], bytes) and len(value[1]) == record.HASH_LEN)


_KIND_TEXT = {"int": "an integer", "nat": "a non-negative integer", "str": "non-empty text",
              "bytes16": "bytes", "bytes32": "bytes", "list": "a list", "map": "a map with integer keys",
              "archived": "[seq, 32-byte hash]", "pair": "[nat, nat]"}


_TABLES = {}   # record type -> (its key table, [(key, name, kind, required, size)] in key order)
_SIZES = {"bytes16": record.REQUEST_ID_LEN, "bytes32": record.HASH_LEN}


def _table(rtype):
    """The merged key table of a record type, built once."""
    got = _TABLES.get(rtype)
    if got is None:
        table = dict(COMMON)
        table.update(BY_TYPE[rtype])
        rows = [(key,) + table[key] + (_SIZES.get(table[key][1]),) for key in sorted(table)]
        got = _TABLES[rtype] = (table, rows)
    return got


def _plainly_ok(value, kind, size):
    """A quick test that implies the full one (``_kind_ok`` and the size) passes; False means
    only that the full test must decide."""
    t = type(value)
    if kind == "nat":
        return t is int and value >= 0
    if kind == "str":
        return t is str and len(value) > 0
    if size is not None:
        return t is bytes and len(value) == size
    if kind == "list":
        return t is list
    return False


def check_fields(fields, index, profile=None):
    """Keys and types of one record body; returns its type. With a ``profile``, an invoice's
    currency must be one of its currencies."""
    rtype = fields.get(record.K_TYPE)
    if not is_int(rtype) or rtype not in BY_TYPE:
        fail("VERIFY_SCHEMA", index, "record type %r is not one of 1-6" % (rtype,))
    table, rows = _table(rtype)
    what = TYPE_NAMES[rtype].upper()
    for k in fields:
        if not ((type(k) is int or is_int(k)) and k in table):
            for key in sorted([k for k in fields if not (is_int(k) and k in table)], key=lambda k: (str(type(k)), k)):
                fail("VERIFY_SCHEMA", index, "key %r is not allowed in a %s record" % (key, what))
    for key, name, kind, required, size in rows:
        if key not in fields:
            if required:
                fail("VERIFY_SCHEMA", index, "%s record lacks key %d (%s)" % (what, key, name))
            continue
        value = fields[key]
        if _plainly_ok(value, kind, size):
            continue
        if isinstance(value, bool) and kind in ("int", "nat"):
            fail("VERIFY_SCHEMA", index, "key %d (%s) is a boolean where an integer belongs" % (key, name))
        if not _kind_ok(value, kind):
            fail("VERIFY_SCHEMA", index, "key %d (%s) must be %s" % (key, name, _KIND_TEXT[kind]))
        if size is not None and len(value) != size:
            fail("VERIFY_SCHEMA", index, "key %d (%s) must be %d bytes, not %d" % (key, name, size, len(value)))
    if rtype == record.INVOICE:
        if fields[record.K_INVOICE_TYPE] not in invoice.TYPES:
            fail("VERIFY_SCHEMA", index, "invoice_type %r is not one of %s"
                 % (fields[record.K_INVOICE_TYPE], ", ".join(invoice.TYPES)))
        if profile is not None and fields[record.K_CURRENCY] not in profile["currencies"]:
            fail("VERIFY_SCHEMA", index, "currency %r is not one of %s"
                 % (fields[record.K_CURRENCY], ", ".join(sorted(profile["currencies"]))))
        credit = fields[record.K_INVOICE_TYPE] in invoice.CREDIT_TYPES
        for key in (record.K_ORIGINAL, record.K_CREDIT_ROOT):
            if (key in fields) != credit:
                fail("VERIFY_SCHEMA", index, "key %d (%s) belongs in exactly the credit invoices"
                     % (key, BY_TYPE[rtype][key][0]))
    if rtype == record.CHECKPOINT:
        check_totals_shape(fields[record.K_TOTALS], index)
        for entry in fields.get(record.K_CLOSED, ()):
            if not (isinstance(entry, list) and len(entry) == 6 and entry[0] in ("M", "Y", "Z") and is_int(entry[1])
                    and _hash(entry[2]) and isinstance(entry[3], str) and _hash(entry[4])
                    and _grand_ok(entry[5])):
                fail("VERIFY_SCHEMA", index, "closed entry %r is not [kind, seq, hash, period, end, grand]" % (entry,))
    if rtype == record.CLOSURE:
        check_closure_shape(fields, index)
    return rtype


def _hash(v):
    return isinstance(v, bytes) and len(v) == record.HASH_LEN


def _grand_ok(grand):
    return isinstance(grand, list) and all([isinstance(g, list) and len(g) == 3 and isinstance(g[0], str)
                                            and is_int(g[1]) and is_int(g[2]) and g[2] >= 0 for g in grand])


def check_closure_shape(fields, index):
    """A CLOSURE's kind, period, end, counts and figures have the shape of PROTOCOL.md 7.10."""
    kind = fields[record.K_KIND]
    try:
        closure.check_period(kind, fields[record.K_PERIOD])
    except CloseError as exc:
        fail("VERIFY_SCHEMA", index, exc.detail)
    if (record.K_END in fields) != (kind != "Z"):
        fail("VERIFY_SCHEMA", index, "key 30 (end) belongs in exactly the M and Y closures")
    last = ""
    for entry in fields[record.K_COUNTS]:
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] in invoice.TYPES and is_int(entry[1])
                and entry[1] > 0 and entry[0] > last):
            fail("VERIFY_SCHEMA", index, "counts entry %r is not [invoice type, n > 0] in type order" % (entry,))
        last = entry[0]
    last = ""
    for entry in fields[record.K_FIGURES]:
        if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str) and entry[0] > last
                and is_int(entry[1]) and is_int(entry[2]) and entry[2] >= 0 and isinstance(entry[3], list)):
            fail("VERIFY_SCHEMA", index, "figures entry %r is not [currency, perpetual, perpetual_abs, groups] in "
                 "currency order" % (entry,))
        last, code = entry[0], ""
        for row in entry[3]:
            if not (isinstance(row, list) and len(row) == 5 and isinstance(row[0], str) and row[0] > code
                    and all([is_int(v) and v >= 0 for v in row[1:]])):
                fail("VERIFY_SCHEMA", index, "figures row %r is not [code, sales base, sales tax, credit base, "
                     "credit tax] in code order" % (row,))
            code = row[0]


def check_totals_shape(totals, index):
    for entry in totals:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                and is_int(entry[1]) and is_int(entry[2])):
            fail("VERIFY_SCHEMA", index, "totals entry %r is not [code, base, tax]" % (entry,))


def _amount_rules(profile, memo):
    """(known codes, {code: [(effective_from, rate)]}) of ``profile``, kept in ``memo`` (a dict
    the caller keeps for a walk) so a journal's invoices do not rebuild them one by one."""
    if memo is not None:
        got = memo.get(id(profile))
        if got is not None and got[0] is profile:
            return got[1], got[2]
    manifest = profile["groups"]
    rates = {}
    for entry in manifest:
        rates.setdefault(entry[0], []).append((entry[3], entry[2]))
    known = taxgroups.codes(manifest)
    if memo is not None:
        memo[id(profile)] = (profile, known, rates)
    return known, rates


def check_amounts(fields, index, profile, memo=None):
    """The invoice amounts rule (PROTOCOL.md 7.1 and 9): groups and total of one INVOICE record,
    against the profile that binds it (the use rule of its invoice type included). ``memo``: a
    dict kept across the records of one walk (the profile's codes and rates, built once)."""
    groups = fields[record.K_GROUPS]
    if not groups:
        fail("VERIFY_AMOUNTS", index, "invoice record has no tax groups")
    t = fields[record.K_TIME]
    if memo is not None and memo.get("t") == t:
        at = memo["at"]
    else:
        at = timefmt.format_time(t)
        if memo is not None:
            memo["t"], memo["at"] = t, at
    known, rates = _amount_rules(profile, memo)
    previous = None
    for g in groups:
        if not (type(g) is list and len(g) == 4 and type(g[0]) is str and type(g[1]) is int and type(g[2]) is int
                and type(g[3]) is int) and \
                not (isinstance(g, list) and len(g) == 4 and isinstance(g[0], str)
                     and is_int(g[1]) and is_int(g[2]) and is_int(g[3])):
            fail("VERIFY_SCHEMA", index, "tax group entry %r is not [code, rate, base, tax]" % (g,))
        code, rate, base, tax = g
        if code not in known:
            fail("VERIFY_AMOUNTS", index, "tax group %s is not a group of profile %s" % (code, profile["id"]))
        if not taxgroups.allowed(profile["types"][fields[record.K_INVOICE_TYPE]], code):
            fail("VERIFY_AMOUNTS", index, "tax group %s is not allowed for a %s invoice by profile %s"
                 % (code, fields[record.K_INVOICE_TYPE], profile["id"]))
        if previous is not None and code <= previous:
            fail("VERIFY_AMOUNTS", index, "tax groups are not sorted by code (%s after %s)" % (code, previous))
        previous = code
        if rate < 0 or base < 0 or tax < 0:
            fail("VERIFY_AMOUNTS", index, "tax group %s has a negative rate, base or tax" % code)
        # taxgroups.rates_until(code, at, manifest), from the rates of this code alone
        if rate not in [r for since, r in rates[code] if since <= at]:
            fail("VERIFY_AMOUNTS", index, "tax group %s rate %d ppm was not in force by %s" % (code, rate, at))
        want = invoice.round_half_up(base * rate, taxgroups.PPM)
        if tax != want:
            fail("VERIFY_AMOUNTS", index, "tax group %s tax %d is not round_half_up(%d x %d / 10^6) = %d"
                 % (code, tax, base, rate, want))
    total = sum([g[2] + g[3] for g in groups])
    if fields[record.K_TOTAL] != total:
        fail("VERIFY_AMOUNTS", index, "total %d is not the sum of the groups' base and tax (%d)"
             % (fields[record.K_TOTAL], total))
