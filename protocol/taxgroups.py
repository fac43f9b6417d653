"""The tax-group manifest TG01-TG14 as data, and the currencies the protocol knows.

Rates are integer parts per million (160000 = 16 %). A code may appear several times with
different ``effective_from``: the entry in force for an invoice is the latest one whose
``effective_from`` is not after the invoice's own timestamp (seed 002: "the invoice timestamp picks
the rate"). Device and host read the same table, so a rate change is one data edit, reviewed once.

TG01-TG03 follow the seeds (TG01 0 % as used for an embassy, TG02 "Standard VAT - Goods" 16 %,
TG03 "Standard VAT - Services" 16 %). TG04-TG14 map the public DRC letter groups (reference
fiscal-device-standards.md section 5.4: C 8 %, E export, F/G public contracts 16/8 %, D, H-M).
They must be confirmed against the DGI originals before production use.
"""

from protocol.errors import InvoiceError

# Decree 23/10 of 3 March 2023 introduced the DRC fiscal devices; the manifest starts there.
_START = "2023-03-03T00:00:00Z"

# (code, name, rate_ppm, effective_from)
MANIFEST = (
    ("TG01", "Exempt", 0, _START),
    ("TG02", "Standard VAT \u2014 Goods", 160000, _START),
    ("TG03", "Standard VAT \u2014 Services", 160000, _START),
    ("TG04", "Reduced VAT", 80000, _START),
    ("TG05", "Export", 0, _START),
    ("TG06", "Public contracts VAT", 160000, _START),
    ("TG07", "Public contracts reduced VAT", 80000, _START),
    ("TG08", "Derogatory regime", 0, _START),
    ("TG09", "Packaging deposits", 0, _START),
    ("TG10", "Guarantees", 0, _START),
    ("TG11", "Disbursements", 0, _START),
    ("TG12", "Non-taxable", 0, _START),
    ("TG13", "Levies on sales", 0, _START),
    ("TG14", "Specific VAT", 160000, _START),
)

# ISO 4217 code -> digits of the minor unit. CDF and USD both have 2.
CURRENCIES = {"CDF": 2, "USD": 2}

PPM = 1000000


def in_force(code, timestamp, manifest=MANIFEST):
    """Return (code, name, rate_ppm, effective_from) in force for ``code`` at ``timestamp``.

    ``timestamp`` is the invoice's ``YYYY-MM-DDTHH:MM:SSZ`` text; that fixed format makes string
    comparison a time comparison.  Raises TAX_GROUP_UNKNOWN when the code has no entry in force.
    """
    best = None
    for entry in manifest:
        if entry[0] == code and entry[3] <= timestamp:
            if best is None or entry[3] > best[3]:
                best = entry
    if best is None:
        raise InvoiceError("TAX_GROUP_UNKNOWN", "tax group %s is not in force at %s" % (code, timestamp))
    return best


def codes(manifest=MANIFEST):
    """All distinct codes of the manifest, sorted."""
    seen = []
    for entry in manifest:
        if entry[0] not in seen:
            seen.append(entry[0])
    seen.sort()
    return seen


def rates_until(code, timestamp, manifest=MANIFEST):
    """Rates of ``code`` in force at some moment up to ``timestamp`` (entries whose
    ``effective_from`` is not after it). A journal record carries only the device's seal time,
    not the POS timestamp that picked the rate, so this is the set a verifier accepts
    (PROTOCOL.md 9) and the set the device checks before sealing, so it never signs a record the
    verifier refuses."""
    return [entry[2] for entry in manifest if entry[0] == code and entry[3] <= timestamp]
