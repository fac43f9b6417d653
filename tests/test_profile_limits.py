"""A valid profile cannot make a record the device cannot write (PROTOCOL.md 6.4, 7.7, 12).

The largest record is a CLOSURE with every cell (group code x currency) a profile allows. With
group codes of 7 or 8 characters, four currencies and sums of 2^32 or more it exceeded MAX_RECORD
(1920 bytes) and CLOSE failed with STORAGE_FAILURE, for good: a device that cannot close cannot
archive. So the profile check bounds what a closure carries: at most 32 cells, four currencies of
three letters A-Z, group codes of 1 to 6 printable ASCII characters (one byte each: a
six-character code of four-byte characters would be 24 bytes). The size tests compute the largest
CLOSURE, CHECKPOINT and INVOICE those limits allow with every integer at the CBOR extreme, so
they hold whatever the amounts and however long the device runs; a device with the largest
profile then closes a day and a month of every cell within a record.
"""

import pytest

from protocol import cbor, invoice, profile_check, record
from protocol.errors import ProfileError
from device.ports import device_id_for
from tests.devkit import DAY, T0, Bench, encode_invoice
from tests.upy import run_upy

BIG = 2 ** 64 - 1           # the largest integer a record can carry (PROTOCOL.md 3.1)
NEG = -(2 ** 64)            # the most negative one (a perpetual total with credits)
TYPES = invoice.TYPES
STAMP = "2026-02-17T04:00:00Z"
DEVICE_ID = device_id_for(b"\x04" * 64, "FMD")     # 12 characters, as every shipped prefix gives (7.8)
HASH = b"\xff" * 32


def profile_doc(codes, currencies=("CDF", "EUR", "USD", "XAF")):
    return {"id": "limits", "name": "the largest profile the check allows",
            "currencies": dict((c, 2) for c in currencies),
            "groups": [[code, "group %s" % code, 160000, "2023-03-03T00:00:00Z"] for code in codes],
            "types": dict((t, "*") for t in TYPES), "classes": dict((k, "*") for k in invoice.CLASSIFICATIONS),
            "window": [172800, 300]}


def largest_codes(n, length=profile_check.MAX_CODE):
    return ["%s%0*d" % ("~", length - 1, i) for i in range(n)]    # "~" (0x7E) is the last printable


def refusal(doc):
    with pytest.raises(ProfileError) as exc:
        invoice.load_profile(cbor.encode(doc))
    assert exc.value.name == "PROFILE_INVALID"
    return exc.value.detail


# -- the check -----------------------------------------------------------------------------------

def test_group_codes_longer_than_six_characters_are_refused_naming_the_group():
    assert profile_check.MAX_CODE == 6
    doc = profile_doc(["TG01", "ABCDEF", "ABCDEFG"], ("CDF",))
    assert refusal(doc) == "groups[2] code 'ABCDEFG' must be 1 to 6 printable ASCII characters, no space"
    doc["groups"] = doc["groups"][:2]
    assert invoice.load_profile(cbor.encode(doc))["groups"][1][0] == "ABCDEF"     # six is fine


@pytest.mark.parametrize("code", ["", "TG 01", "TG\t1", "T\u00c401", "\U0001f600", 7, None])
def test_group_codes_are_printable_ascii(code):
    doc = profile_doc(["TG01", code], ("CDF",))
    shown = {"TG\t1": "'TG\\u00091'", "T\u00c401": "'T\\u00c401'", "\U0001f600": "'\\U0001f600'"}.get(code, repr(code))
    assert refusal(doc) == "groups[1] code %s must be 1 to 6 printable ASCII characters, no space" % shown


@pytest.mark.parametrize("currency", ["usd", "US", "USDX", "U5D", "\u00c4\u00d6\u00dc"])
def test_currencies_are_three_letters_a_to_z(currency):
    shown = "'\\u00c4\\u00d6\\u00dc'" if currency[0] == "\u00c4" else repr(currency)
    assert refusal(profile_doc(["TG01"], ("CDF", currency))) == \
        "currency %s is not an ISO 4217 code (three letters A-Z)" % shown


def test_both_shipped_profiles_pass():
    from protocol import profile_host
    for name in profile_host.shipped():
        doc = invoice.load_profile(profile_host.load_bytes(name))
        assert max(len(g[0]) for g in doc["groups"]) <= 4


# CPython's str methods know Unicode, MicroPython's only ASCII ("\u00c4\u00d6\u00dc".isalpha() is
# True in one, False in the other): the check must give a board the same answer as a host.
SAME_ON_BOTH = r'''
from protocol import cbor, invoice
from protocol.errors import FiscalError
def answer(doc):
    try:
        return "accepted " + invoice.load_profile(cbor.encode(doc))["id"]
    except FiscalError as exc:
        return exc.name + ": " + exc.detail
base = %r
for code in ("ABCDEFG", "T\u00c401", "TG 01", "TG01"):
    doc = dict(base)
    doc["groups"] = [[code, "g", 160000, "2023-03-03T00:00:00Z"]]
    print(answer(doc))
doc = dict(base)
doc["currencies"] = {"CDF": 2, "\u00c4\u00d6\u00dc": 2}
print(answer(doc))
'''


def test_the_check_answers_the_same_in_micropython():
    import subprocess
    import sys

    script = SAME_ON_BOTH % (profile_doc(["TG01"], ("CDF",)),)
    root = __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__)))
    cpython = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env=dict(__import__("os").environ, PYTHONPATH=root)).stdout
    assert cpython.splitlines() == [
        "PROFILE_INVALID: groups[0] code 'ABCDEFG' must be 1 to 6 printable ASCII characters, no space",
        "PROFILE_INVALID: groups[0] code 'T\\u00c401' must be 1 to 6 printable ASCII characters, no space",
        "PROFILE_INVALID: groups[0] code 'TG 01' must be 1 to 6 printable ASCII characters, no space",
        "accepted limits",
        "PROFILE_INVALID: currency '\\u00c4\\u00d6\\u00dc' is not an ISO 4217 code (three letters A-Z)"]
    assert run_upy(script) == cpython


def test_the_device_refuses_such_a_profile_and_keeps_none():
    b = Bench(profile=None)
    status, detail = b.call("PROFILE", data=cbor.encode(profile_doc(["TG0001X"], ("CDF",))))
    assert (status, detail) == ("PROFILE_INVALID",
                                "groups[0] code 'TG0001X' must be 1 to 6 printable ASCII characters, no space")
    assert b.keys.profile() is None and b.ok("INFO")["profile_id"] == ""


# -- the largest records the limits allow ---------------------------------------------------------

def closure_size(kind, n_codes, n_currencies, code_length=profile_check.MAX_CODE):
    """Bytes (body and signature) of the largest CLOSURE of ``kind`` with that many codes and
    currencies: every cell present, every integer at the CBOR extreme, all five invoice types."""
    fields = {record.K_TYPE: record.CLOSURE, record.K_SEQ: BIG, record.K_COUNTER: BIG, record.K_TIME: BIG,
              record.K_PREV: HASH, record.K_DEVICE: DEVICE_ID, record.K_KIND: kind,
              record.K_PERIOD: {"Z": "2026-02-17", "M": "2026-02", "Y": "2026"}[kind],
              record.K_RANGE: [BIG, BIG], record.K_FISCAL: [BIG, BIG],
              record.K_COUNTS: [[t, BIG] for t in sorted(TYPES)],
              record.K_FIGURES: [["X%02d" % c, NEG, BIG, [[code, BIG, BIG, BIG, BIG]
                                                          for code in largest_codes(n_codes, code_length)]]
                                 for c in range(n_currencies)],
              record.K_MERKLE: HASH, record.K_CHAIN: HASH}
    if kind != "Z":
        fields[record.K_END] = HASH
    return len(record.encode_body(fields)) + record.SIG_LEN


def shapes():
    for n_currencies in range(1, profile_check.MAX_CURRENCIES + 1):
        for n_codes in range(1, profile_check.MAX_CELLS // n_currencies + 1):
            yield n_codes, n_currencies


def test_the_largest_closure_a_valid_profile_allows_fits_in_a_record():
    sizes = [(closure_size(kind, n, c), kind, n, c) for kind in "ZMY" for n, c in shapes()]
    largest = max(sizes)
    assert largest == (1914, "M", 8, 4)                         # PROTOCOL.md 7.7 gives this figure
    assert largest[0] <= record.MAX_RECORD
    # one character more and the same profile shape would not fit: the code limit is what holds it
    assert closure_size("M", 8, 4, profile_check.MAX_CODE + 1) > record.MAX_RECORD


def test_the_largest_checkpoint_and_invoice_fit_too():
    codes = largest_codes(profile_check.MAX_CELLS)            # one currency: 32 codes
    grand = [["X%02d" % c, NEG, BIG] for c in range(profile_check.MAX_CURRENCIES)]
    closed = [[kind, BIG, HASH, {"Z": "2026-02-17", "M": "2026-02", "Y": "2026"}[kind], HASH, grand]
              for kind in ("M", "Y", "Z")]
    checkpoint = {record.K_TYPE: record.CHECKPOINT, record.K_SEQ: BIG, record.K_COUNTER: BIG, record.K_TIME: BIG,
                  record.K_PREV: HASH, record.K_DEVICE: DEVICE_ID, record.K_TOTALS: [[c, NEG, NEG] for c in codes],
                  record.K_ARCHIVED: [BIG, HASH], record.K_CREDIT_ROOT: HASH, record.K_PROFILE: HASH,
                  record.K_CLOSED: closed}
    assert len(record.encode_body(checkpoint)) + record.SIG_LEN <= record.MAX_RECORD
    top = invoice.MAX_AMOUNT                                  # what the invoice check lets through
    sale = {record.K_REQUEST_ID: b"\xff" * record.REQUEST_ID_LEN, record.K_TYPE: record.INVOICE,
            record.K_SEQ: BIG, record.K_COUNTER: BIG, record.K_TIME: BIG, record.K_DEVICE: DEVICE_ID,
            record.K_INVOICE_HASH: HASH, record.K_INVOICE_TYPE: "export_credit",
            record.K_GROUPS: [[c, 1000000, top, top] for c in codes], record.K_TOTAL: top,
            record.K_CURRENCY: "XAF", record.K_ORIGINAL: BIG, record.K_CREDIT_ROOT: HASH}
    assert len(record.encode_body(sale)) + record.SIG_LEN <= record.MAX_RECORD


# -- on the device ----------------------------------------------------------------------------------

def _doc(profile, lines, itype, currency, credit=None):
    """A canonical invoice under ``profile``: lines are (quantity in thousandths, unit price, code)."""
    items = [{1: "SKU-%d" % i, 2: "", 3: q, 4: p, 5: code, 6: "EA"} for i, (q, p, code) in enumerate(lines)]
    groups = invoice.compute_groups(items, STAMP, profile)
    total = sum(g[2] + g[3] for g in groups)
    doc = {1: "308123456", 2: "outlet-kin001", 3: "POS-07", 4: "cashier-13", 5: itype, 6: STAMP,
           7: {1: "Acme Ltd", 2: "123456789", 3: "Company"}, 8: items,
           9: [{1: c, 2: "", 3: r, 4: base, 5: tax} for c, r, base, tax in groups],
           10: {1: sum(g[2] for g in groups), 2: sum(g[3] for g in groups), 3: total, 4: currency},
           11: [{1: "cash", 2: total, 3: "", 4: currency}]}
    if credit is not None:
        doc[12] = {1: credit, 2: "returned"}
    return doc


def test_a_device_with_the_largest_profile_closes_every_cell_within_a_record():
    codes = largest_codes(8)
    data = cbor.encode(profile_doc(codes))
    b = Bench(profile=data)
    b.ok("SET_TIME", time=T0)
    profile = invoice.load_profile(data)
    price = 10 ** 12                  # per group and invoice: every cell and total above 2^32
    originals = []
    for currency in sorted(profile["currencies"]):
        for itype in ("sale", "advance", "export"):
            status, answer = b.seal(encode_invoice(_doc(profile, [(1000, price, c) for c in codes], itype, currency)))
            assert status == "OK", answer
            originals.append((answer["sealed"][record.S_COUNTER], itype, currency))
    for counter, itype, currency in originals:
        if itype == "advance":
            continue
        assert b.evidence_call(counter)[0] == "OK"
        kind = "export_credit" if itype == "export" else "credit_note"
        number = record.fiscal_number(b.core.device_id, counter)
        status, answer = b.seal(encode_invoice(_doc(profile, [(500, price, c) for c in codes], kind, currency,
                                                    number)))
        assert status == "OK", answer
    z = b.ok("CLOSE", kind="Z", period=DAY, offset=0, records=[], last=True)
    m = b.ok("CLOSE", kind="M", period=DAY[:7], offset=0, records=[z["record"]], last=True)
    for closing in (z, m):
        body = record.decode(closing["record"])[0]
        figures = body[record.K_FIGURES]
        assert [f[0] for f in figures] == sorted(profile["currencies"])
        assert sum(len(f[3]) for f in figures) == profile_check.MAX_CELLS       # every cell
        assert min(min(row[1:]) for f in figures for row in f[3]) >= 2 ** 32    # 9-byte integers
        assert len(body[record.K_COUNTS]) == len(TYPES)
        assert len(closing["record"]) <= record.MAX_RECORD
    assert len(m["record"]) > len(z["record"])
    assert b.verify()["closures"] == [z["seq"], m["seq"]]
