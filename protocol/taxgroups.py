"""The reader of tax-profile data: which groups and rates exist, and who may use which group.

A country profile is data, not code (issue 11; PROTOCOL.md 6.4): ``{id, name, currencies {code:
digits}, groups [[code, name, rate_ppm, effective_from], ...], types {invoice_type: "*" | [codes]},
classes {client_class: "*" | [codes]}, window [seconds before, seconds after]}`` plus optional
``notes`` and ``unconfirmed``. The repository ships it as JSON (protocol/profiles/); the device
holds its canonical CBOR (the same value, text keys), installed by PROFILE and bound to the journal
by a signed EVENT carrying its SHA-256. No code here names a group.

Rates are integer parts per million (160000 = 16 %). A code may appear several times with different
``effective_from``: the entry in force for an invoice is the latest one whose ``effective_from`` is
not after the invoice's own timestamp (seed 002: "the invoice timestamp picks the rate").

``groups`` arguments are a profile's ``groups`` list. On a board the profile is decoded when it is
used and dropped after (device/core.py), so no table of it stays in RAM.
"""

from protocol.errors import InvoiceError, ProfileError

PPM = 1000000
# Digits of the minor unit the reference host formats amounts with (ISO 4217); the device and the
# verifier take the currencies of the installed profile instead.
CURRENCIES = {"CDF": 2, "USD": 2}

MAX_PROFILE = 1900     # bytes of canonical CBOR: PROFILE carries it in one frame
MAX_CELLS = 32         # group codes x currencies: the largest CLOSURE then fits in a record
MAX_CURRENCIES = 4
KEYS = ("id", "name", "currencies", "groups", "types", "classes", "window")
OPTIONAL = ("notes", "unconfirmed")


def in_force(code, timestamp, groups):
    """Return [code, name, rate_ppm, effective_from] in force for ``code`` at ``timestamp``.

    ``timestamp`` is the invoice's ``YYYY-MM-DDTHH:MM:SSZ`` text; that fixed format makes string
    comparison a time comparison.  Raises TAX_GROUP_UNKNOWN when the code has no entry in force.
    """
    best = None
    for entry in groups:
        if entry[0] == code and entry[3] <= timestamp:
            if best is None or entry[3] > best[3]:
                best = entry
    if best is None:
        raise InvoiceError("TAX_GROUP_UNKNOWN", "tax group %s is not in force at %s" % (code, timestamp))
    return best


def codes(groups):
    """All distinct codes of a profile's groups, sorted."""
    seen = []
    for entry in groups:
        if entry[0] not in seen:
            seen.append(entry[0])
    seen.sort()
    return seen


def rates_until(code, timestamp, groups):
    """Rates of ``code`` in force at some moment up to ``timestamp`` (entries whose
    ``effective_from`` is not after it). A journal record carries only the device's seal time,
    not the POS timestamp that picked the rate, so this is the set a verifier accepts
    (PROTOCOL.md 9) and the set the device checks before sealing, so it never signs a record the
    verifier refuses."""
    return [entry[2] for entry in groups if entry[0] == code and entry[3] <= timestamp]


def allowed(rule, code):
    """Whether a ``types`` or ``classes`` rule ("*" or a list of codes) admits ``code``."""
    return rule == "*" or code in rule


def check_rules(profile, itype, klass, group_codes):
    """The profile's use rules for one invoice: every group used must be allowed for its type
    (GROUP_NOT_FOR_TYPE) and for its client class (GROUP_NOT_FOR_CLASS)."""
    for code in group_codes:
        if not allowed(profile["types"][itype], code):
            raise InvoiceError("GROUP_NOT_FOR_TYPE", "tax group %s is not allowed for a %s invoice by profile %s"
                               % (code, itype, profile["id"]))
        if not allowed(profile["classes"][klass], code):
            raise InvoiceError("GROUP_NOT_FOR_CLASS", "tax group %s is not allowed for a %s client by profile %s"
                               % (code, klass, profile["id"]))


def _bad(text):
    raise ProfileError("PROFILE_INVALID", text)


def _text(value, what, limit):
    if not isinstance(value, str) or not value or len(value) > limit:
        _bad("%s must be text of 1 to %d characters" % (what, limit))


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
    from protocol import timefmt

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
        if not isinstance(code, str) or len(code) != 3 or code.upper() != code or not code.isalpha():
            _bad("currency %r is not an ISO 4217 code" % (code,))
        _nat(cur[code], "currencies.%s" % code, 4)
    groups = doc["groups"]
    if not isinstance(groups, list) or not groups or len(groups) > 64:
        _bad("groups must be a list of 1 to 64 entries")
    for entry in groups:
        if not isinstance(entry, list) or len(entry) != 4:
            _bad("group entry %r is not [code, name, rate_ppm, effective_from]" % (entry,))
        _text(entry[0], "group code", 8)
        _text(entry[1], "name of group %s" % entry[0], 64)
        _nat(entry[2], "rate of group %s" % entry[0], PPM)
        try:
            timefmt.parse_time(entry[3], "effective_from of group %s" % entry[0])
        except InvoiceError as exc:
            _bad(exc.detail)
    known = codes(groups)
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
