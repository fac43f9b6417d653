"""The time codec, the tax manifest, the totals rule and the host's JSON -> canonical conversion."""

import datetime
import json
import os
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostd.intake.canonical import to_canonical
from hostd.errors import InvalidPayload
from protocol import cbor, invoice, profile_host, taxgroups, timefmt
from protocol.errors import InvoiceError
from tests.devkit import make_invoice

GROUPS = profile_host.default()["groups"]

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "samples")


@given(st.integers(timefmt.MIN_TIME - 10 ** 9, timefmt.MAX_TIME + 10 ** 9))
@settings(max_examples=2000)
def test_time_codec_matches_the_calendar(t):
    text = timefmt.format_time(t)
    assert text == datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert timefmt.parse_time(text) == t


@pytest.mark.parametrize("text", ["2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-02-17T24:00:00Z",
                                  "2026-02-17T04:00:00+00:00", "2026-02-17t04:00:00Z", "２026-02-17T04:00:00Z",
                                  "2026-02-17T04:00:00.0Z", 20260217])
def test_time_codec_refuses_other_spellings(text):
    with pytest.raises(InvoiceError) as info:
        timefmt.parse_time(text)
    assert info.value.name == "INVOICE_TIMESTAMP"


def test_rate_in_force_follows_effective_from():
    profile = profile_host.load("seed-tg")
    profile["groups"].append(["TG02", "Standard VAT \u2014 Goods", 180000, "2027-01-01T00:00:00Z"])
    manifest = profile["groups"]
    assert taxgroups.in_force("TG02", "2026-12-31T23:59:59Z", manifest)[2] == 160000
    assert taxgroups.in_force("TG02", "2027-01-01T00:00:00Z", manifest)[2] == 180000
    doc = make_invoice(lines=((1000, 100000, "TG02"),), timestamp="2027-01-02T00:00:00Z")
    with pytest.raises(InvoiceError) as info:
        invoice.check(doc, profile)     # built with the 16 % profile
    assert info.value.name == "TAX_RATE_MISMATCH"
    assert len(taxgroups.codes(GROUPS)) == 14


@given(st.lists(st.tuples(st.integers(1, 10 ** 6), st.integers(0, 10 ** 8), st.sampled_from(taxgroups.codes(GROUPS))),
                min_size=1, max_size=20))
@settings(max_examples=300)
def test_totals_rule_against_exact_decimal_arithmetic(lines):
    doc = make_invoice(lines)
    summary = invoice.check(doc)
    for code, base, tax in summary["groups"]:
        exact = sum(Decimal(q) * p for q, p, g in lines if g == code) / 1000
        assert base == int(exact.quantize(Decimal(1), rounding="ROUND_HALF_UP"))
        rate = taxgroups.in_force(code, doc[6], GROUPS)[2]
        assert tax == int((Decimal(base) * rate / 10 ** 6).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    assert summary["total"] == summary["subtotal"] + summary["total_vat"]
    assert invoice.decode(cbor.encode(doc))[1] == summary


def test_sample_invoices_convert_exactly():
    for name, total in (("invoice-002-services.json", 116000), ("invoice-000-goods.json", 11600000)):
        with open(os.path.join(SAMPLES, name), "rb") as fh:
            canonical, summary = to_canonical(fh.read())
        assert summary["total"] == total
        assert cbor.encode(cbor.decode(canonical)) == canonical


def _sample(**changes):
    with open(os.path.join(SAMPLES, "invoice-002-services.json")) as fh:
        doc = json.load(fh)
    for path, value in changes.items():
        target = doc
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        target[keys[-1]] = value
    return json.dumps(doc)


@pytest.mark.parametrize("changes,field", [
    ({"totals__total": "1160.001"}, "totals.total"),
    ({"items__0__unit_price": 500.005}, "items[0].unit_price"),
    ({"items__0__quantity": "0.0001"}, "items[0].quantity"),
    ({"tax_groups__0__rate": "0.1600001"}, "tax_groups[0].rate"),
    ({"totals__currency": "EUR"}, "totals.currency"),
    ({"items__0__unit_price": True}, "items[0].unit_price"),
    ({"items__0__unit_price": "-5"}, "items[0].unit_price"),
    ({"totals__subtotal": "999.00"}, "totals.subtotal"),
    ({"client__classification": "Corporation"}, "client.classification"),
])
def test_inexact_or_invalid_json_names_the_field(changes, field):
    with pytest.raises(InvalidPayload) as info:
        to_canonical(_sample(**changes))
    assert info.value.field == field, info.value.detail


def test_field_order_and_missing_fields_are_named():
    doc = json.loads(_sample())
    reordered = {"outlet_id": doc["outlet_id"], "merchant_nif": doc["merchant_nif"]}
    reordered.update({k: v for k, v in doc.items() if k not in reordered})
    with pytest.raises(InvalidPayload) as info:
        to_canonical(json.dumps(reordered))
    assert "order" in info.value.detail
    del doc["payments"]
    with pytest.raises(InvalidPayload) as info:
        to_canonical(json.dumps(doc))
    assert info.value.field == "payments"


def test_a_refusal_names_the_field_its_detail_names():
    """A credit note without its original is refused naming ``credit``, the field it must carry,
    never a word of the sentence."""
    with pytest.raises(InvalidPayload) as info:
        to_canonical(_sample(invoice_type="credit_note"))
    assert info.value.field == "credit" and "names its original" in info.value.detail


def test_an_invoice_without_timestamp_is_dated_at_acceptance_and_its_hash_carries_it():
    """The samples leave the timestamp out: the host fills in the time it accepts the invoice
    (UTC, to the second) before canonicalisation, so the canonical bytes, the hash the device
    signs and the document kept for GET all carry it; a timestamp that is sent is kept as sent."""
    from hostd.intake import shapes
    from hostd.intake.canonical import parse_invoice

    with open(os.path.join(SAMPLES, "invoice-000-goods.json"), "rb") as fh:
        raw = fh.read()
    assert b"timestamp" not in raw
    parsed = parse_invoice(raw, now="2026-12-01T10:00:00Z")
    assert parsed.stamped and cbor.decode(parsed.canonical)[6] == "2026-12-01T10:00:00Z"
    kept = json.loads(parsed.text())
    assert list(kept) == [entry[1] for entry in invoice.INVOICE] and kept["timestamp"] == "2026-12-01T10:00:00Z"
    assert '"rate":0.16,' in parsed.text() and '"unit_price":100000,' in parsed.text()   # numbers stay numbers
    assert to_canonical(parsed.text(), now="2027-01-01T00:00:00Z")[0] == parsed.canonical   # the kept text seals the same
    dated = json.loads(raw)
    dated = {k: dated[k] for k in list(dated)[:5]} | {"timestamp": "2026-12-01T09:00:00Z"} | \
        {k: dated[k] for k in list(dated)[5:]}
    given = parse_invoice(json.dumps(dated), now="2026-12-01T10:00:00Z")
    assert not given.stamped and cbor.decode(given.canonical)[6] == "2026-12-01T09:00:00Z"
    stamp = shapes.accepted_at()
    assert timefmt.parse_time(stamp) <= int(__import__("time").time()) and stamp.endswith("Z") and len(stamp) == 20
    assert abs(timefmt.parse_time(cbor.decode(to_canonical(raw)[0])[6]) - timefmt.parse_time(stamp)) <= 2   # default: now


@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30), st.text(max_size=8),
                              st.decimals(-10 ** 12, 10 ** 12, places=6)),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=10))
@settings(max_examples=300, deadline=None)
def test_strict_dumps_writes_back_exactly_what_loads_reads(value):
    from hostd.intake import strictjson

    text = strictjson.dumps(value)
    assert strictjson.loads(text) == value and strictjson.dumps(strictjson.loads(text)) == text


def _reference_dumps(value):
    """strictjson.dumps as first written: json.dumps for every key and scalar (the quoting the
    faster one must keep, character for character)."""
    if isinstance(value, dict):
        return "{" + ",".join("%s:%s" % (json.dumps(k, ensure_ascii=False), _reference_dumps(v))
                              for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_reference_dumps(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


# values as strictjson.loads gives them: what its dumps writes and a batch item is made of
_loaded_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30), st.text(),
                                        st.decimals(-10 ** 12, 10 ** 12, places=6)),
                              lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                              max_leaves=16)


@given(_loaded_values)
@settings(max_examples=400, deadline=None)
def test_strict_dumps_quotes_exactly_as_json_dumps(value):
    from hostd.intake import strictjson

    assert strictjson.dumps(value) == _reference_dumps(value)


@given(_loaded_values)
@settings(max_examples=400, deadline=None)
def test_a_batch_items_bytes_read_by_json_alone_as_strictjson_reads_them(value):
    """POST /api/v1/invoices/batch reads the body strictly once and each item's bytes (written
    by the daemon from that read) with json.loads: the same values, types and order included."""
    from hostd.api.accept import document_bytes
    from hostd.intake import strictjson

    raw = document_bytes(value)
    assert repr(json.loads(raw)) == repr(strictjson.loads(raw))


def _exact_or_none(value, scale):
    """The reference for hostd/intake/amounts.py ``scaled``: exact rational arithmetic."""
    from fractions import Fraction
    number = Fraction(str(value)) if not isinstance(value, int) else Fraction(value)
    if number and abs(number) >= 10 ** 16:
        return "too large"
    product = number * scale
    return int(product) if product.denominator == 1 else "not exact"


@given(st.one_of(st.integers(-10 ** 17, 10 ** 17), st.integers(0, 10 ** 6),
                 st.decimals(0, 10 ** 17, allow_nan=False, allow_infinity=False, places=4),
                 st.decimals(0, 10 ** 6, allow_nan=False, allow_infinity=False, places=8).map(str).filter(
                     lambda t: "E" not in t and "e" not in t)),
       st.sampled_from([1, 100, 1000, 10 ** 6]))
@settings(max_examples=500, deadline=None)
def test_scaled_amounts_are_exact_rational_arithmetic(value, scale):
    from hostd.intake.amounts import scaled

    want = _exact_or_none(value, scale)
    if isinstance(want, int):
        assert scaled(value, scale, "x", "unit") == want
    else:
        with pytest.raises(InvalidPayload) as raised:
            scaled(value, scale, "x", "unit")
        assert want in raised.value.detail and raised.value.field == "x"


# -- the strict reader against its first, plainer walk ----------------------------------------

def _reference_walk(value, path, depth):
    """hostd/intake/strictjson.py's walk as first written (every path named, every text encoded)."""
    from hostd.intake import strictjson as sj
    where = path or "body"
    if isinstance(value, (sj._Object, list)):
        if depth >= sj.MAX_DEPTH:
            raise InvalidPayload("%s is nested deeper than %d levels" % (where, sj.MAX_DEPTH), where)
        if isinstance(value, sj._Object):
            out = {}
            for key, item in value:
                sub = "%s.%s" % (path, key) if path else key
                _reference_check_text(key, sub)
                if key in out:
                    raise InvalidPayload("duplicate key %s" % sub, sub)
                out[key] = _reference_walk(item, sub, depth + 1)
            return out
        return [_reference_walk(value[i], "%s[%d]" % (where if path else "", i), depth + 1) for i in range(len(value))]
    if isinstance(value, sj._Number):
        if len(value) > sj.MAX_NUMBER:
            raise InvalidPayload("%s is a number of %d characters; at most %d" % (where, len(value), sj.MAX_NUMBER),
                                 where)
        if value.lstrip("-").isdigit():
            return int(value)
        try:
            return Decimal(value)
        except ArithmeticError:
            raise InvalidPayload("%s=%s is out of range" % (where, value), where)
    if isinstance(value, str):
        _reference_check_text(value, where)
    return value


def _reference_check_text(text, where):
    from hostd.intake import strictjson as sj
    if len(text) > sj.MAX_STRING:
        raise InvalidPayload("%s is a text of %d characters; at most %d" % (where, len(text), sj.MAX_STRING), where)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPayload("%s holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not a character"
                             % where, where)


def _outcome(fn):
    try:
        return "value", repr(fn())
    except InvalidPayload as exc:
        return "refused", exc.field, exc.detail


_json_scalars = st.one_of(
    st.integers(-10 ** 45, 10 ** 45).map(str), st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["true", "false", "null", "1e999999", "0.5", "-0", '"\\ud800"', '"a\\udfffb"', '"\\u00e9"',
                     '"\\\\u"', '""']),
    st.builds(lambda t, a: json.dumps(t, ensure_ascii=a), st.text(max_size=8), st.booleans()),
    st.sampled_from([4095, 4096, 4097]).map(lambda n: '"' + "x" * n + '"'))
_json_keys = st.one_of(st.sampled_from(["a", "b", "", "items", "\\ud800", "k" * 4097]), st.text(max_size=3))
_json_texts = st.recursive(_json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"),
    st.lists(st.tuples(_json_keys.map(lambda k: k if k.startswith("\\") else json.dumps(k)[1:-1]), inner),
             max_size=3).map(lambda kvs: "{" + ",".join('"%s":%s' % kv for kv in kvs) + "}")), max_leaves=12)


@given(_json_texts, st.booleans())
@settings(max_examples=600, deadline=None)
def test_the_strict_reader_answers_as_its_plainer_first_walk(text, as_bytes):
    """The faster walk (paths named only for an error, texts encoded only after a \\u escape or
    when given text) returns the same values and refuses with the same field and detail."""
    from hostd.intake import strictjson as sj

    raw = text.encode("utf-8", "surrogatepass") if as_bytes else text

    def reference():
        parsed = json.loads(sj.text_of(raw), object_pairs_hook=sj._Object, parse_float=sj._Number,
                            parse_int=sj._Number, parse_constant=sj._no_constant)
        return _reference_walk(parsed, "", 0)
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return                                  # not JSON at all: both refuse before any walk
    if _outcome(lambda: sj.text_of(raw))[0] == "value":
        assert _outcome(lambda: sj.loads(raw)) == _outcome(reference)
