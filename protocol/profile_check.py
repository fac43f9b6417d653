"""The check of a country profile's format and limits (PROTOCOL.md 6.4), and its loader.

Everything else about a profile (which rate is in force, the use rules) is protocol/taxgroups.py.
This module is imported only when a profile is installed or loaded (protocol/invoice.py
``load_profile``): a board runs it at power-up and for PROFILE, never to seal, and forgets it
after (device/core.py ``unload``), so its code and texts do not stay in RAM.
"""

from protocol import cbor, taxgroups, timefmt
from protocol.errors import CborError, InvoiceError, ProfileError

MAX_PROFILE = 1900     # bytes of canonical CBOR: PROFILE carries it in one frame
MAX_CELLS = 32         # group codes x currencies: the largest CLOSURE then fits in a record
MAX_CURRENCIES = 4
MAX_CODE = 6           # characters of a group code, printable ASCII: with the two limits above, the
                       # largest CLOSURE fits in record.MAX_RECORD (PROTOCOL.md 7.7)
KEYS = ("id", "name", "currencies", "groups", "types", "classes", "window")
OPTIONAL = ("notes", "unconfirmed")


def load(data, types, classes):
    """Canonical CBOR bytes of a profile -> the checked profile map (PROFILE_INVALID otherwise)."""
    if len(data) > MAX_PROFILE:
        _bad("profile of %d bytes; limit %d" % (len(data), MAX_PROFILE))
    try:
        doc = cbor.decode(data)
    except CborError as exc:
        _bad("not canonical CBOR: %s" % exc.detail)
    return check_profile(doc, types, classes)


def _bad(text):
    raise ProfileError("PROFILE_INVALID", text)


def _text(value, what, limit):
    if not isinstance(value, str) or not value or len(value) > limit:
        _bad("%s must be text of 1 to %d characters" % (what, limit))


def _ascii(text, low, high):
    """Whether every character of ``text`` is in ``low``..``high`` (code points, ASCII here): one
    byte each in UTF-8, and the same answer in MicroPython, whose str methods know only ASCII."""
    for ch in text:
        if ord(ch) < low or ord(ch) > high:
            return False
    return True


def _shown(value):
    """``value`` for a detail: text quoted, every character outside printable ASCII as a \\u escape
    (CPython's repr shows such characters, MicroPython's escapes them: one text on both)."""
    if not isinstance(value, str):
        return repr(value)
    out = []
    for ch in value:
        n = ord(ch)
        out.append(ch if 0x20 <= n < 0x7F else ("\\u%04x" % n if n < 0x10000 else "\\U%08x" % n))
    return "'" + "".join(out) + "'"


def _nat(value, what, limit):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > limit:
        _bad("%s must be an integer 0..%d" % (what, limit))


def _rule(rule, known, what):
    if rule == "*":
        return
    if not isinstance(rule, list) or not rule:
        _bad("%s must be \"*\" or a non-empty list of group codes" % what)
    for code in rule:
        if code not in known:
            _bad("%s names %r, which is not a group of the profile" % (what, code))


def _names(table, want, what, known):
    if not isinstance(table, dict) or sorted([k for k in table if isinstance(k, str)]) != sorted(want) \
            or len(table) != len(want):
        _bad("%s must map exactly %s" % (what, ", ".join(want)))
    for name in want:
        _rule(table[name], known, "%s.%s" % (what, name))


def _in_order(table):
    """A decoded map's keys in one order on every port (MicroPython dicts keep none), so an
    invalid profile gets the same detail on a board as in CPython: integers first, then text."""
    return sorted(table, key=lambda k: (isinstance(k, str), k))


def check_profile(doc, types, classes):
    """Validate a decoded profile (PROTOCOL.md 6.4) for the protocol's invoice ``types`` and client
    ``classes``; raise PROFILE_INVALID naming the first problem."""
    if not isinstance(doc, dict):
        _bad("a profile is a map")
    for key in _in_order(doc):
        if key not in KEYS and key not in OPTIONAL:
            _bad("unknown profile key %r" % (key,))
    for key in KEYS:
        if key not in doc:
            _bad("the profile lacks %s" % key)
    _text(doc["id"], "id", 32)
    _text(doc["name"], "name", 128)
    cur = doc["currencies"]
    if not isinstance(cur, dict) or not cur or len(cur) > MAX_CURRENCIES:
        _bad("currencies must map 1 to %d currency codes to their digits" % MAX_CURRENCIES)
    for code in _in_order(cur):
        if not isinstance(code, str) or len(code) != 3 or not _ascii(code, 0x41, 0x5A):
            _bad("currency %s is not an ISO 4217 code (three letters A-Z)" % _shown(code))
        _nat(cur[code], "currencies.%s" % code, 4)
    groups = doc["groups"]
    if not isinstance(groups, list) or not groups or len(groups) > 64:
        _bad("groups must be a list of 1 to 64 entries")
    for i in range(len(groups)):
        entry = groups[i]
        if not isinstance(entry, list) or len(entry) != 4:
            _bad("group entry %r is not [code, name, rate_ppm, effective_from]" % (entry,))
        code = entry[0]
        if not isinstance(code, str) or not code or len(code) > MAX_CODE or not _ascii(code, 0x21, 0x7E):
            _bad("groups[%d] code %s must be 1 to %d printable ASCII characters, no space"
                 % (i, _shown(code), MAX_CODE))
        _text(entry[1], "name of group %s" % entry[0], 64)
        _nat(entry[2], "rate of group %s" % entry[0], taxgroups.PPM)
        try:
            timefmt.parse_time(entry[3], "effective_from of group %s" % entry[0])
        except InvoiceError as exc:
            _bad(exc.detail)
    known = taxgroups.codes(groups)
    seen = [[e[0], e[3]] for e in groups]
    for i in range(len(seen)):
        if seen[i] in seen[:i]:
            _bad("group %s has two entries from %s" % (seen[i][0], seen[i][1]))
    if len(known) * len(cur) > MAX_CELLS:
        _bad("%d group codes x %d currencies exceed %d" % (len(known), len(cur), MAX_CELLS))
    _names(doc["types"], types, "types", known)
    _names(doc["classes"], classes, "classes", known)
    window = doc["window"]
    if not isinstance(window, list) or len(window) != 2:
        _bad("window must be [seconds before, seconds after]")
    _nat(window[0], "window[0]", 10 ** 8)
    _nat(window[1], "window[1]", 10 ** 8)
    if "notes" in doc and not isinstance(doc["notes"], str):
        _bad("notes must be text")
    if "unconfirmed" in doc:
        _rule(doc["unconfirmed"], known, "unconfirmed")
    return doc
