"""Tests of protocol/cbor.py: cbor2 (canonical=True) as oracle for the encoder, hand-built bytes
for every class of refusal, and fuzzing for the one-encoding-per-value property of the decoder."""

import tracemalloc

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import cbor
from protocol.cbor import MAX_DEPTH, decode, encode
from protocol.errors import CborError, FiscalError

U64 = 2**64 - 1
ints = st.integers(min_value=-(2**64), max_value=U64)
edge_ints = st.sampled_from([0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, U64,
                             -1, -24, -25, -256, -257, -65536, -65537, -(2**32), -(2**32) - 1,
                             -(2**64)])
scalars = (st.none() | st.booleans() | ints | edge_ints | st.binary(max_size=40)
           | st.text(max_size=20))
keys = ints | edge_ints | st.text(max_size=8)


def depth(x):
    if isinstance(x, list):
        return 1 + max([depth(i) for i in x] or [0])
    if isinstance(x, dict):
        return 1 + max([depth(v) for v in x.values()] or [0])
    return 0


values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=4),
    max_leaves=10,
).filter(lambda x: depth(x) <= MAX_DEPTH)


def same(a, b):
    """Equality that tells True from 1 and bytes from str (== does not on CPython)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def rejected(data, *words, **kw):
    with pytest.raises(CborError) as info:
        decode(data, **kw)
    assert info.value.name == "CBOR_MALFORMED" and info.value.code == 0x10
    for w in words:
        assert w in info.value.detail, info.value.detail
    return info.value


# ---------------------------------------------------------------- encoder against the oracle

@given(values)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_encode_matches_cbor2_and_round_trips(x):
    data = encode(x)
    assert data == cbor2.dumps(x, canonical=True)
    assert same(decode(data), x)
    assert same(decode(cbor2.dumps(x, canonical=True)), x)
    for i in range(len(data)):
        rejected(data[:i])
    rejected(data + b"\x00", "trailing bytes at offset %d" % len(data))


def test_known_encodings():
    assert encode(0) == b"\x00"
    assert encode(23) == b"\x17"
    assert encode(24) == b"\x18\x18"
    assert encode(-1) == b"\x20"
    assert encode(-(2**64)) == b"\x3b" + b"\xff" * 8
    assert encode(U64) == b"\x1b" + b"\xff" * 8
    assert encode(True) == b"\xf5" and encode(False) == b"\xf4" and encode(None) == b"\xf6"
    assert encode([True, 1, False, 0]) == b"\x84\xf5\x01\xf4\x00"
    assert encode(bytearray(b"ab")) == b"\x42ab" and encode((1, 2)) == b"\x82\x01\x02"
    assert encode("\u00e9") == b"\x62\xc3\xa9"


def test_map_order_is_length_first_like_rfc7049_not_bytewise_like_rfc8949():
    d = {"aa": 4, 100: 1, "a": 3, -1: 2, 24: 5, 23: 6, "b": 7}
    want = bytes.fromhex("a7" "1706" "2002" "181805" "186401" "616103" "616207" "62616104")
    assert encode(d) == want == cbor2.dumps(d, canonical=True)
    assert same(decode(want), d)
    rejected(bytes.fromhex("a2" "186401" "2002"), "out of canonical order")  # RFC 8949 order


@pytest.mark.parametrize("obj", [
    1.0, 0.5, float("nan"), 2**64, -(2**64) - 1, set(), object(), {1: 1.5}, [2**70],
    {True: 1}, {None: 1}, {b"k": 1}, {(1,): 1}, {1.0: 1}, "\ud800", complex(1, 1),
])
def test_encode_refuses_outside_the_subset(obj):
    with pytest.raises(CborError):
        encode(obj)


def test_encode_refuses_nesting_it_could_not_decode_and_cycles():
    deep = 0
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert decode(encode(deep)) == deep
    with pytest.raises(CborError, match="nesting"):
        encode([deep])
    with pytest.raises(CborError, match="nesting"):
        encode({1: deep})
    loop = []
    loop.append(loop)
    with pytest.raises(CborError, match="nesting"):
        encode(loop)


# ---------------------------------------------------------------- each refusal, hand-built

def test_non_shortest_heads_are_refused():
    rejected(b"\x18\x17", "non-shortest")
    rejected(b"\x19\x00\xff", "non-shortest")
    rejected(b"\x1a\x00\x00\xff\xff", "non-shortest")
    rejected(b"\x1b\x00\x00\x00\x00\xff\xff\xff\xff", "non-shortest")
    rejected(b"\x38\x00", "non-shortest")          # -1 in two bytes
    rejected(b"\x58\x01a", "non-shortest")         # length of a byte string
    rejected(b"\x78\x00", "non-shortest")          # length of a text string
    rejected(b"\x98\x00", "non-shortest")          # count of an array
    rejected(b"\xb8\x00", "non-shortest")          # count of a map


@given(st.integers(min_value=0, max_value=U64), st.sampled_from([0, 1, 2, 3, 4, 5]))
def test_every_longer_head_than_needed_is_refused(n, major):
    shortest = cbor._head(major, n)
    width = len(shortest) - 1
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if size > width and n < 256 ** size:
            rejected(bytes([major << 5 | ai]) + n.to_bytes(size, "big") + b"\x00" * 64,
                     "non-shortest")


@pytest.mark.parametrize("data, words", [
    (b"\x5f\x41a\xff", "indefinite"), (b"\x7f\x61a\xff", "indefinite"),
    (b"\x9f\x01\xff", "indefinite"), (b"\xbf\x01\x02\xff", "indefinite"),
    (b"\xff", "break"), (b"\x1f", "indefinite"), (b"\x3f", "indefinite"),
    (b"\x1c", "reserved"), (b"\x3d", "reserved"), (b"\x5e", "reserved"), (b"\x9e", "reserved"),
    (b"\xc1\x1a\x00\x00\x00\x00", "tag"), (b"\xc2\x41\x01", "tag"), (b"\xd8\x20\x60", "tag"),
    (b"\xf9\x3c\x00", "float16"), (b"\xfa\x3f\x80\x00\x00", "float32"),
    (b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", "float64"), (b"\xf7", "undefined"),
    (b"\xe0", "simple value"), (b"\xf3", "simple value"), (b"\xf8\xff", "simple value"),
    (b"\xfc", "reserved"), (b"\xfe", "reserved"),
])
def test_forms_outside_the_subset_are_refused(data, words):
    rejected(data, words, "offset 0")


def test_refusal_names_the_offset_inside_a_structure():
    rejected(b"\x83\x01\x02\xf9\x3c\x00", "float16", "offset 3")
    rejected(b"\xa1\x61a\x82\x00\x18\x05", "non-shortest", "offset 5")


def test_map_keys():
    rejected(b"\xa2\x01\x01\x01\x02", "duplicate or out of canonical order", "offset 3")
    rejected(b"\xa2\x61b\x01\x61a\x02", "out of canonical order", "offset 4")
    rejected(b"\xa2\x62aa\x01\x61b\x02", "out of canonical order")  # longer key first
    rejected(b"\xa2\x20\x01\x00\x02", "out of canonical order")     # -1 before 0
    for key in (b"\x41k", b"\x80", b"\xa0", b"\xf4", b"\xf5", b"\xf6", b"\xc1\x00", b"\xf9\0\0"):
        rejected(b"\xa1" + key + b"\x01", "not an int or text", "offset 1")
    assert decode(b"\xa2\x00\x01\x20\x02") == {0: 1, -1: 2}


def test_trailing_and_truncated():
    rejected(b"\x01\x00", "trailing bytes at offset 1")
    rejected(b"\xf6\xf6", "trailing")
    rejected(b"", "truncated", "offset 0")
    rejected(b"\x19\x01", "truncated head")
    rejected(b"\x82\x19\x01\x00", "truncated", "offset 4")
    rejected(b"\x82\x01", "exceeds")
    rejected(b"\x43ab", "exceeds")
    rejected(b"\xa1\x01", "exceeds")


@pytest.mark.parametrize("raw", [
    b"\xff", b"\x80", b"\xbf", b"\xc3", b"\xc3(", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80",
    b"\xe0\x9f\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf",
    b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"a\xe2\x28\xa1",
])
def test_invalid_utf8_is_refused(raw):
    # overlong forms, surrogates and > U+10FFFF are accepted by MicroPython's bytes.decode:
    # the codec must refuse them itself so device and host agree
    rejected(cbor._head(3, len(raw)) + raw, "UTF-8")


def utf8_agrees_with_cpython(raw):
    data = cbor._head(3, len(raw)) + raw
    try:
        want = raw.decode("utf-8")
    except UnicodeDecodeError:
        rejected(data, "UTF-8")
        # the hand-written check alone (all MicroPython has) must refuse it too
        assert cbor._utf8_error(raw, 0, len(raw)) >= 0
    else:
        assert decode(data) == want
        assert cbor._utf8_error(raw, 0, len(raw)) == -1


def test_utf8_lead_and_second_byte_exhaustively_against_cpython():
    mismatches = []
    for lead in range(0x80, 0x100):
        tail = b"" if lead < 0xE0 else b"\x80" if lead < 0xF0 else b"\xbf\xbf"  # exact length
        for second in range(0x100):
            raw = bytes((lead, second)) + tail
            try:
                raw.decode("utf-8")
                ok = True
            except UnicodeDecodeError:
                ok = False
            try:
                decode(cbor._head(3, len(raw)) + raw)
                accepted = True
            except CborError:
                accepted = False
            if accepted != ok or (cbor._utf8_error(raw, 0, len(raw)) < 0) != ok:
                mismatches.append(raw)
    assert mismatches == []


@given(st.binary(max_size=12))
@settings(max_examples=500)
def test_text_acceptance_equals_cpython_strict_utf8(raw):
    utf8_agrees_with_cpython(raw)


def test_nesting_depth():
    assert decode(b"\x81" * 16 + b"\x00") is not None
    rejected(b"\x81" * 17 + b"\x00", "nesting deeper than 16", "offset 16")
    rejected(b"\xa1\x00" * 17 + b"\x00", "nesting deeper than 16", "offset 32")
    assert decode(b"\x81\x81\x00", max_depth=2) == [[0]]
    rejected(b"\x81\x81\x80", "nesting deeper than 2", max_depth=2)
    rejected(b"\x80", "nesting", max_depth=0)
    assert decode(b"\x01", max_depth=0) == 1
    rejected(b"\x81" * 100000, "nesting")           # never a RecursionError
    rejected(b"\xa1\x00" * 100000, "nesting")


@pytest.mark.parametrize("data", [
    b"\x5b\x7f\xff\xff\xff\xff\xff\xff\xff", b"\x7b\x7f\xff\xff\xff\xff\xff\xff\xff",
    b"\x9b\x7f\xff\xff\xff\xff\xff\xff\xff", b"\xbb\x7f\xff\xff\xff\xff\xff\xff\xff",
    b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff" + b"\x00" * 100, b"\x5a\xff\xff\xff\xff",
    b"\x9a\x00\x01\x00\x00" + b"\x00" * 1000, b"\xba\x00\x01\x00\x00" + b"\x00" * 1000,
    b"\xa3\x00\x00\x01\x01\x02",
])
def test_declared_length_beyond_input_is_refused_at_the_head(data):
    tracemalloc.start()
    try:
        rejected(data, "exceeds", "offset 0")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


@pytest.mark.parametrize("data", ["\x01", 1, None, [1]])
def test_decode_of_non_bytes_is_a_cbor_error(data):
    rejected(data, "needs bytes")


def test_buffers_accepted_and_errors_are_fiscal_errors():
    assert decode(bytearray(b"\x82\x01\x02")) == [1, 2]
    assert decode(memoryview(b"\x42ab")) == b"ab"
    assert isinstance(rejected(b"\xf7"), FiscalError)


# ---------------------------------------------------------------- fuzz: CborError only, uniqueness

def check_strict(data):
    try:
        value = decode(data)
    except CborError:
        return None
    assert encode(value) == data            # the accepted form is the one canonical encoding
    assert same(cbor2.loads(data), value)   # and it means what a general decoder says it means
    return value


@given(st.binary(max_size=64))
@settings(max_examples=10000, deadline=None)
def test_fuzz_arbitrary_bytes(data):
    check_strict(data)


def mutations(data, byte, bit):
    """Every single-byte deletion, insertion of ``byte`` and flip of ``bit``, at every position."""
    for i in range(len(data) + 1):
        yield data[:i] + bytes([byte]) + data[i:]
    for i in range(len(data)):
        yield data[:i] + data[i + 1:]
        yield data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:]


@given(values, st.integers(0, 255), st.integers(0, 7))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_valid_encodings(x, byte, bit):
    for data in mutations(encode(x), byte, bit):
        check_strict(data)


def test_single_bytes_accepted_are_exactly_the_one_byte_items():
    # guards against a decoder that refuses everything and so passes the fuzz trivially
    accepted = []
    for i in range(256):
        try:
            decode(bytes([i]))
        except CborError:
            continue
        accepted.append(i)
    want = list(range(0x18)) + list(range(0x20, 0x38)) + [0x40, 0x60, 0x80, 0xA0, 0xF4, 0xF5, 0xF6]
    assert accepted == want


# -- the same answers in MicroPython -----------------------------------------------------------------

SAME_IN_MICROPYTHON = r'''
import binascii
from protocol import cbor
from protocol.errors import CborError
for text in %r:
    try:
        print("ok", binascii.hexlify(cbor.encode(cbor.decode(binascii.unhexlify(text)))).decode())
    except CborError as exc:
        print("refused", exc.detail)
for keys in %r:
    doc = {}
    for k in keys:
        doc[k] = [k, -1 - k] if isinstance(k, int) else k
    print("encoded", binascii.hexlify(cbor.encode(doc)).decode())
'''


def _corpus():
    """Maps and heads around the codec's fast paths (one-byte heads and keys): canonical ones,
    keys out of order or repeated, non-shortest heads, every argument width."""
    texts = []
    for keys in ([0, 1, 23], [23, 24], [24, 23], [1, 1], [255, 256], [256, 255], ["a", "b"], ["b", "a"],
                 ["a", 0], [0, "a"], [-1, 0], [0, -1], [23, "aa", 24]):
        body = b"".join(cbor2.dumps(k) + b"\x00" for k in keys)
        texts.append((bytes([0xA0 + len(keys)]) + body).hex())
    for head in ("17", "1817", "1818", "190018", "1a00000018", "1b0000000000000018", "3817", "37", "5800",
                 "6161", "7800", "80", "8117", "9800", "a0", "b800", "a1f600", "c000", "1c", "1f", "f7", ""):
        texts.append(head)
    return texts


def test_the_codec_answers_the_same_in_micropython():
    """protocol/cbor.py's one-byte fast paths in decoding (arguments under 24) and in encoding
    (small int keys) give MicroPython and CPython the same bytes and the same refusals."""
    import os
    import subprocess
    import sys

    from tests.upy import run_upy

    key_sets = [list(range(30)), [23, 24, 0, 255, 256, 65535, 65536, 2 ** 32, -1, -24, -25], ["b", "a", 1, 0, "aa"]]
    script = SAME_IN_MICROPYTHON % (_corpus(), key_sets)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cpython = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env=dict(os.environ, PYTHONPATH=root)).stdout
    lines = cpython.splitlines()
    assert len(lines) == len(_corpus()) + len(key_sets)
    assert lines[0] == "ok a3000001001700" and lines[2] == "refused map key at offset 4 is duplicate or out of canonical order"
    assert sum(line.startswith("refused") for line in lines) >= 15
    for keys, line in zip(key_sets, lines[-len(key_sets):]):
        doc = {k: ([k, -1 - k] if isinstance(k, int) else k) for k in keys}
        assert line == "encoded " + cbor2.dumps(doc, canonical=True).hex()
    assert run_upy(script) == cpython
