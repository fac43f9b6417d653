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
used and dropped after (device/core.py), so no table of it stays in RAM. Checking a profile's
format and limits is protocol/profile_check.py, imported only to install or load one.
"""

from protocol.errors import InvoiceError

PPM = 1000000
# Digits of the minor unit the reference host formats amounts with (ISO 4217); the device and the
# verifier take the currencies of the installed profile instead.
CURRENCIES = {"CDF": 2, "USD": 2}



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
