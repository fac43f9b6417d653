"""Canonical CBOR of a small subset, shared by the device (MicroPython) and the host (CPython).

Why a codec of our own: journal records and signed messages are hashed and signed over their CBOR
bytes, so both sides must agree not only on what a value *means* but on its one and only byte
form.  General decoders (cbor2 included) accept non-shortest heads, duplicate keys, floats, tags
and indefinite lengths; each of those would give one value several encodings, and a signature
check over re-encoded data could then pass or fail depending on who re-encoded it.

The subset (RFC 8949 §3, data model of §2):

- unsigned and negative integers (major types 0 and 1), so -2**64 .. 2**64-1;
- byte strings (2), UTF-8 text strings (3), arrays (4), maps (5) with int or text keys only;
- false, true and null (major type 7, values 20, 21, 22).  No floats, no undefined, no simple
  values, no tags (major type 6).

Canonical form is RFC 7049 §3.9 ("Canonical CBOR"), which is exactly what
``cbor2.dumps(x, canonical=True)`` produces: every integer, length and count in its shortest head
(RFC 8949 §4.2.1 preferred serialization), definite lengths only, and map keys sorted by the length
of their encoding first, then bytewise.  Note the length-first rule differs from RFC 8949 §4.2.1
(bytewise only) for keys such as 100 (0x18 0x64) and -1 (0x20): here -1 sorts first.

``decode`` is strict: it accepts a byte string only if ``encode`` would have produced exactly that
string, so ``encode(decode(b)) == b`` whenever ``decode(b)`` succeeds.  Any refusal is a
``CborError`` (CBOR_MALFORMED) whose detail names the problem and its byte offset.  UTF-8 is
checked by hand (RFC 3629) because MicroPython's ``bytes.decode`` accepts overlong forms,
surrogates and code points above U+10FFFF that CPython refuses; both sides must refuse the same.
Nesting of arrays and maps is bounded by ``max_depth`` (and by MAX_DEPTH when encoding), which
also bounds the recursion.
"""

from protocol.errors import CborError

MAX_DEPTH = 16

_UINT64_MAX = 0xFFFFFFFFFFFFFFFF
# smallest argument that legitimately needs additional info 24, 25, 26, 27 (shortest-form rule)
_MIN_ARG = (24, 0x100, 0x10000, 0x100000000)
_SIMPLE = {0xF4: False, 0xF5: True, 0xF6: None}
_MAJOR7_NAMES = {23: "undefined", 24: "simple value", 25: "float16", 26: "float32",
                 27: "float64", 31: "break"}


def _utf8_error(b, start, end):
    """Return the offset of the first byte that breaks strict UTF-8 (RFC 3629 §4), or -1."""
    i = start
    while i < end:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            n, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            n, lo, hi = 2, 0xA0, 0xBF  # no overlong 3-byte forms
        elif c == 0xED:
            n, lo, hi = 2, 0x80, 0x9F  # no UTF-16 surrogates
        elif 0xE1 <= c <= 0xEF:
            n, lo, hi = 2, 0x80, 0xBF
        elif c == 0xF0:
            n, lo, hi = 3, 0x90, 0xBF  # no overlong 4-byte forms
        elif 0xF1 <= c <= 0xF3:
            n, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            n, lo, hi = 3, 0x80, 0x8F  # nothing above U+10FFFF
        else:
            return i
        if i + n >= end or not lo <= b[i + 1] <= hi:
            return i
        for j in range(i + 2, i + n + 1):
            if not 0x80 <= b[j] <= 0xBF:
                return i
        i += n + 1
    return -1


# ---------------------------------------------------------------- encoding

def _head(major, n):
    """Initial byte plus argument in its shortest form (RFC 8949 §3, §4.2.1)."""
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n <= 0xFF:
        return bytes((mt | 24, n))
    if n <= 0xFFFF:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    if n <= 0xFFFFFFFF:
        return bytes((mt | 26,)) + n.to_bytes(4, "big")
    return bytes((mt | 27,)) + n.to_bytes(8, "big")


def _text_bytes(s):
    try:
        b = s.encode("utf-8")
    except UnicodeError:
        raise CborError("text is not encodable as UTF-8")
    if len(b) != len(s) and _utf8_error(b, 0, len(b)) >= 0:
        raise CborError("text contains a surrogate or invalid code point")
    return b


def _enc(obj, out, depth):
    # bool before int: isinstance(True, int) is True in CPython and False in MicroPython
    if isinstance(obj, bool):
        out.append(b"\xf5" if obj else b"\xf4")
    elif obj is None:
        out.append(b"\xf6")
    elif isinstance(obj, int):
        if obj > _UINT64_MAX or obj < -_UINT64_MAX - 1:
            raise CborError("integer %d is outside -2**64 .. 2**64-1" % obj)
        out.append(_head(0, obj) if obj >= 0 else _head(1, -1 - obj))
    elif isinstance(obj, (bytes, bytearray)):
        out.append(_head(2, len(obj)))
        out.append(bytes(obj))
    elif isinstance(obj, str):
        b = _text_bytes(obj)
        out.append(_head(3, len(b)))
        out.append(b)
    elif isinstance(obj, (list, tuple, dict)):
        if depth >= MAX_DEPTH:
            raise CborError("nesting deeper than %d" % MAX_DEPTH)
        if isinstance(obj, dict):
            pairs = []
            for k in obj:
                if type(k) is int and 0 <= k < 24:   # a record's or an invoice's keys: one byte
                    kb = bytes((k,))
                elif isinstance(k, bool) or not isinstance(k, (int, str)):
                    raise CborError("map key of type %s (only int or str)" % type(k).__name__)
                else:
                    kb = _encode_item(k, depth + 1)
                pairs.append((len(kb), kb, _encode_item(obj[k], depth + 1)))
            pairs.sort()  # RFC 7049 §3.9: shorter encoded key first, then bytewise
            out.append(_head(5, len(pairs)))
            for _, kb, vb in pairs:
                out.append(kb)
                out.append(vb)
        else:
            out.append(_head(4, len(obj)))
            for item in obj:
                _enc(item, out, depth + 1)
    else:
        raise CborError("unsupported type %s" % type(obj).__name__)


def _encode_item(obj, depth):
    out = []
    _enc(obj, out, depth)
    return b"".join(out)


def encode(obj):
    """Return the canonical CBOR bytes of ``obj``; CborError for anything outside the subset."""
    return _encode_item(obj, 0)


# ---------------------------------------------------------------- decoding

def _arg(data, pos, end):
    """Parse the head at ``pos``; return (major, argument, offset after the head)."""
    ib = data[pos]
    major = ib >> 5
    ai = ib & 0x1F
    if ai < 24:
        return major, ai, pos + 1
    if ai == 31:
        raise CborError("indefinite length or break (0x%02x) at offset %d" % (ib, pos))
    if ai > 27:
        raise CborError("reserved additional info %d at offset %d" % (ai, pos))
    n = 1 << (ai - 24)
    if pos + 1 + n > end:
        raise CborError("truncated head at offset %d" % pos)
    val = int.from_bytes(data[pos + 1:pos + 1 + n], "big")
    if val < _MIN_ARG[ai - 24]:
        raise CborError("non-shortest integer or length at offset %d" % pos)
    return major, val, pos + 1 + n


def _dec(data, pos, end, depth, max_depth):
    if pos >= end:
        raise CborError("truncated: data item expected at offset %d" % pos)
    ib = data[pos]
    major = ib >> 5
    if major == 7:
        if ib in _SIMPLE:
            return _SIMPLE[ib], pos + 1
        ai = ib & 0x1F
        what = _MAJOR7_NAMES.get(ai, "simple value" if ai < 24 else "reserved major 7 value")
        raise CborError("%s (0x%02x) at offset %d not allowed" % (what, ib, pos))
    if major == 6:
        raise CborError("tag (0x%02x) at offset %d not allowed" % (ib, pos))
    n = ib & 0x1F
    if n < 24:   # the argument is in the initial byte: most items of an invoice or a record
        p = pos + 1
    else:
        major, n, p = _arg(data, pos, end)
    if major == 0:
        return n, p
    if major == 1:
        return -1 - n, p
    if major == 2 or major == 3:
        if n > end - p:
            raise CborError("string length %d at offset %d exceeds the %d bytes left"
                            % (n, pos, end - p))
        raw = data[p:p + n]
        if major == 2:
            return raw, p + n
        try:
            s = raw.decode("utf-8")
        except UnicodeError:
            s = None
        if s is None or len(s) != n:  # not pure ASCII: the strict check both interpreters share
            bad = _utf8_error(data, p, p + n)
            if s is None or bad >= 0:
                raise CborError("invalid UTF-8 at offset %d in text at offset %d"
                                % (bad if bad >= 0 else p, pos))
        return s, p + n
    if depth >= max_depth:
        raise CborError("nesting deeper than %d at offset %d" % (max_depth, pos))
    if major == 4:
        if n > end - p:  # every item needs at least one byte: refuse before building anything
            raise CborError("array count %d at offset %d exceeds the %d bytes left"
                            % (n, pos, end - p))
        items = []
        for _ in range(n):
            item, p = _dec(data, p, end, depth + 1, max_depth)
            items.append(item)
        return items, p
    # major 5: map
    if n > (end - p) // 2:
        raise CborError("map count %d at offset %d exceeds the %d bytes left" % (n, pos, end - p))
    result = {}
    prev = None
    for _ in range(n):
        if p < end and (data[p] >> 5) not in (0, 1, 3):
            raise CborError("map key at offset %d is not an int or text" % p)
        key, kend = _dec(data, p, end, depth + 1, max_depth)
        kb = data[p:kend]
        # RFC 7049 3.9: shorter encoded key first, then bytewise; an equal key is a duplicate
        if prev is not None and (len(kb) < len(prev) or (len(kb) == len(prev) and kb <= prev)):
            raise CborError("map key at offset %d is duplicate or out of canonical order" % p)
        prev = kb
        value, p = _dec(data, kend, end, depth + 1, max_depth)
        result[key] = value
    return result, p


def decode(data, max_depth=MAX_DEPTH):
    """Decode exactly one canonical CBOR item filling all of ``data``; CborError otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CborError("decode needs bytes, not %s" % type(data).__name__)
    data = bytes(data)
    value, pos = _dec(data, 0, len(data), 0, max_depth)
    if pos != len(data):
        raise CborError("trailing bytes at offset %d" % pos)
    return value
