"""The host's faster codec (hostd/intake/fastcbor.py) against the reference codec (protocol/cbor.py).

The property: encoding gives the reference's bytes or its error, for values of the subset and
outside it; whenever the decoding fast path takes a value, the reference decodes the same bytes
to the same value, types included (True is not 1); otherwise the reference decides. Tried on random
values of the subset, on random bytes, on what cbor2 makes of values outside the subset (floats,
tags, big integers, sets, indefinite lengths, unsorted and duplicate keys), and on journal records
with bytes flipped (hypothesis).
"""

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostd.intake import fastcbor
from protocol import cbor, record
from protocol.errors import CborError, VerifyError
from tests.devkit import T0, Bench, encode_invoice, make_invoice

ints = st.one_of(st.integers(-2 ** 64, 2 ** 64 - 1), st.integers(-30, 30))
scalars = st.one_of(ints, st.binary(max_size=40), st.text(max_size=20), st.booleans(), st.none())
keys = st.one_of(st.integers(-2 ** 64, 2 ** 64 - 1), st.integers(0, 40), st.text(max_size=6))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(keys, inner, max_size=5)), max_leaves=25)
# what cbor2 can write that the subset forbids or writes otherwise
foreign_scalars = st.one_of(scalars, st.floats(allow_nan=False), st.integers(-2 ** 70, 2 ** 70),
                            st.builds(cbor2.CBORTag, st.integers(6, 300), st.integers(0, 5)),
                            st.frozensets(st.integers(0, 5), max_size=3))
foreign = st.recursive(foreign_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.integers(-40, 40), st.text(max_size=3)), inner,
                                                 max_size=4)), max_leaves=15)


def same(a, b):
    """Equal values of equal types all the way down (True is not 1, 1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(type(k) is type(j) for k, j in zip(a, b)) and \
            all(same(a[k], b[k]) for k in a)
    return a == b


def check_bytes(data):
    """The fast path takes ``data`` only with the reference's value; decode() always answers as
    the reference does."""
    taken = fastcbor._fast(bytes(data))
    try:
        want = cbor.decode(bytes(data))
    except CborError as exc:
        assert taken is None, (data.hex(), taken)
        with pytest.raises(CborError) as raised:
            fastcbor.decode(data)
        assert raised.value.detail == exc.detail
        return
    if taken is not None:
        assert same(taken[0], want), data.hex()
    assert same(fastcbor.decode(data), want)


@settings(max_examples=400, deadline=None)
@given(values)
def test_canonical_bytes_of_subset_values_decode_alike(value):
    data = cbor.encode(value)
    assert fastcbor._fast(data) is not None          # the fast path takes every canonical value
    check_bytes(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=60))
def test_random_bytes_decode_alike(data):
    check_bytes(data)


@settings(max_examples=400, deadline=None)
@given(foreign, st.booleans())
def test_what_cbor2_writes_decodes_alike(value, canonical):
    try:
        data = cbor2.dumps(value, canonical=canonical)
    except (cbor2.CBOREncodeError, TypeError, ValueError):
        return
    check_bytes(data)


def check_encode(value):
    """encode() answers as the reference does: the same bytes, or a CborError with its detail."""
    try:
        want = cbor.encode(value)
    except CborError as exc:
        with pytest.raises(CborError) as raised:
            fastcbor.encode(value)
        assert raised.value.detail == exc.detail
        return
    assert fastcbor.encode(value) == want


@settings(max_examples=400, deadline=None)
@given(values)
def test_subset_values_encode_alike(value):
    assert fastcbor._plain(value, 0, [])              # the fast path takes every value of the subset
    check_encode(value)


# what a caller could hand the encoder that the subset forbids: floats, tags, big integers, sets,
# tuples, bytearrays, bool keys, lone surrogates, nesting past the limit
outside_scalars = st.one_of(foreign_scalars, st.just("\ud800"), st.binary(max_size=4).map(bytearray))
outside = st.recursive(outside_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.lists(inner, max_size=3).map(tuple),
    st.dictionaries(st.one_of(st.integers(-40, 40), st.text(max_size=3), st.booleans(),
                              st.integers(-2 ** 70, 2 ** 70)), inner, max_size=4)),
    max_leaves=15)


def test_integer_keys_beyond_64_bits_are_the_references_to_refuse():
    for key in (2 ** 64, -2 ** 64 - 1, 10 ** 30):
        check_encode({key: 0})
        check_encode({"a": {key: 1}})
    # a map keyed by a bignum (tag 2 / tag 3): not a canonical map of the subset
    for hexed in ("a1c24901000000000000000000", "a1c34901000000000000000000"):
        data = bytes.fromhex(hexed)
        assert fastcbor._fast(data) is None, hexed
        check_bytes(data)
    body = bytes.fromhex("a1c24901000000000000000000")
    with pytest.raises(VerifyError) as raised:
        fastcbor.decode_record(body + bytes(record.SIG_LEN))
    assert raised.value.name == "VERIFY_RECORD"


@settings(max_examples=400, deadline=None)
@given(outside)
def test_values_outside_the_subset_encode_alike(value):
    check_encode(value)


def test_nesting_past_the_limit_encodes_alike():
    deep = 0
    for _ in range(cbor.MAX_DEPTH + 1):
        deep = [deep]
    check_encode(deep)
    check_encode({1: deep})


def test_an_accepted_invoice_is_encoded_by_the_fast_path():
    invoice = make_invoice(lines=((1000, 500, "TG02"), (3, 7, "TG03")))
    assert fastcbor._plain(invoice, 0, []) and fastcbor.encode(invoice) == encode_invoice(invoice)


def test_the_forbidden_forms_fall_back_to_the_reference():
    forms = ["f93e00", "fb3ff8000000000000", "c24901000000000000000000", "c11a5f5e1000", "9f01ff", "5f4101ff",
             "a201000100", "a20200010a", "1817", "f7", "f820", "d9010283010203", "0001", "a1f500", "7f6161ff"]
    for hexed in forms:
        data = bytes.fromhex(hexed)
        assert fastcbor._fast(data) is None, hexed
        check_bytes(data)


@pytest.fixture(scope="module")
def records():
    bench = Bench()
    bench.ok("SET_TIME", time=T0)
    for i in range(6):
        assert bench.seal(encode_invoice(make_invoice(lines=((1000 + i, 500, "TG02"), (3, 7, "TG03")))))[0] == "OK"
    bench.archive_upto()                  # a Z closure and a checkpoint among them
    return bench.history()


def test_every_record_decodes_alike(records):
    for i, rec in enumerate(records):
        assert fastcbor._fast(rec[:-record.SIG_LEN]) is not None
        assert fastcbor.decode_record(rec, i) == record.decode(rec, i)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_damaged_records_decode_alike(records, data):
    rec = bytearray(data.draw(st.sampled_from(records)))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(rec) - 1))
        rec[at] = data.draw(st.integers(0, 255))
    rec = bytes(rec[:data.draw(st.integers(0, len(rec)))])
    check_bytes(rec[:-record.SIG_LEN] if len(rec) > record.SIG_LEN else rec)
    try:
        want = record.decode(rec, 3)
    except VerifyError as exc:
        with pytest.raises(VerifyError) as raised:
            fastcbor.decode_record(rec, 3)
        assert (raised.value.name, raised.value.detail) == (exc.name, exc.detail)
        return
    got = fastcbor.decode_record(rec, 3)
    assert same(got[0], want[0]) and got[1:] == want[1:]
