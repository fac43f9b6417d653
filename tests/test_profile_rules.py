"""Issue 11 point 3: the tax rules are data. Under both shipped profiles the device refuses an
export invoice or an Embassy client at a 16 % group, each with its own code, and seals them at the
export or exempt group the profile names; no code here names a group: each is read from the
profile itself."""

import pytest

from protocol import cbor, invoice, profile_host
from tests.devkit import T0, Bench

TS = "2026-02-17T04:00:00Z"   # T0: inside the window around the bench clock


def _doc(profile, code, itype="sale", classification="Company", ts=TS):
    items = [{1: "SKU-1", 2: "item", 3: 1000, 4: 100000, 5: code, 6: "EA"}]
    groups = invoice.compute_groups(items, ts, profile)
    subtotal, vat = sum(g[2] for g in groups), sum(g[3] for g in groups)
    return cbor.encode({1: "308123456", 2: "outlet-kin001", 3: "POS-07", 4: "cashier-13", 5: itype, 6: ts,
                        7: {1: "Client", 2: "123456789", 3: classification}, 8: items,
                        9: [{1: c, 2: "", 3: r, 4: b, 5: t} for c, r, b, t in groups],
                        10: {1: subtotal, 2: vat, 3: subtotal + vat, 4: "CDF"},
                        11: [{1: "cash", 2: subtotal + vat, 3: "", 4: "CDF"}]})


def _standard(profile):
    """A 16 % group any sale may use."""
    allowed = profile["types"]["sale"]
    return [g[0] for g in profile["groups"] if g[2] == 160000 and (allowed == "*" or g[0] in allowed)][0]


@pytest.mark.parametrize("name", profile_host.shipped())
def test_export_and_embassy_follow_the_profile(name):
    profile = profile_host.load(name)
    bench = Bench(profile=profile_host.load_bytes(name))
    bench.ok("SET_TIME", time=T0)
    standard, export, exempt = _standard(profile), profile["types"]["export"][0], profile["classes"]["Embassy"][0]
    assert bench.ok("INFO")["profile_id"] == name
    counter = bench.core.counter
    assert bench.seal(_doc(profile, standard, itype="export"))[0] == "GROUP_NOT_FOR_TYPE"
    assert bench.seal(_doc(profile, standard, classification="Embassy"))[0] == "GROUP_NOT_FOR_CLASS"
    assert bench.core.counter == counter                      # refusals write nothing
    assert bench.seal(_doc(profile, export, itype="export"))[0] == "OK"
    assert bench.seal(_doc(profile, exempt, classification="Embassy"))[0] == "OK"
    assert bench.seal(_doc(profile, standard))[0] == "OK"     # a plain sale at 16 % still seals
    assert bench.verify()["invoices"] == counter + 3


@pytest.mark.parametrize("ts, ok", [("2099-01-01T00:00:00Z", False), ("2026-02-17T04:05:00Z", True),
                                    ("2026-02-17T04:05:01Z", False), ("2026-02-15T04:00:00Z", True),
                                    ("2026-02-15T03:59:59Z", False)])
def test_the_invoice_time_must_be_near_the_device_clock(ts, ok):
    """The profile's window (-48 h / +5 min of the device clock, both edges inclusive)."""
    profile = profile_host.default()
    bench = Bench()
    bench.ok("SET_TIME", time=T0)
    status = bench.seal(_doc(profile, _standard(profile), ts=ts))[0]
    assert status == ("OK" if ok else "INVOICE_TIME_WINDOW"), (ts, status)
