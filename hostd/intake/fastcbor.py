"""A faster canonical CBOR codec for the host, held to the reference codec (issue 15).

``fiscal verify`` decodes every journal record, and the daemon encodes every invoice it accepts;
protocol/cbor.py (the codec the device runs, the reference) does both in pure Python. Encoding:
``encode`` hands plain data of the subset (below) to cbor2's C encoder with ``canonical=True``,
and anything else to the reference, which encodes it or raises its own error. Decoding: cbor2's
C decoder reads the bytes, with its strict options
(no duplicate keys, no indefinite lengths; DESIGN-NOTES section 4), and its result is taken only
when it is provably what the reference decoder returns:

- it is plain data of the subset: ints within -2**64 .. 2**64-1 (bool, None), bytes, text,
  lists, and maps with int or text keys, nested at most MAX_DEPTH deep: no float, simple value,
  tag or the object a semantic tag decodes to (datetime, Decimal, set, bignum ...) gets through;
- cbor2 encodes it back to exactly the bytes given: shortest heads, definite lengths, no
  trailing bytes, no duplicate key, and map keys in canonical order (checked directly for maps
  whose keys are all non-negative ints, where canonical order is ascending order; other maps are
  encoded with ``canonical=True``, RFC 7049 3.9, the order protocol/cbor.py uses).

Plain data of the subset has one canonical encoding, the same in both codecs, and the reference
decoder accepts exactly the canonical encodings of the subset; so a value taken here equals the
reference decoding. Anything else (an error, or a doubt) is decoded by the reference, which
returns its value or raises its own error: the answer never differs, only the time it takes.
tests/test_fastcbor.py compares the two on random values and random bytes (hypothesis), both
ways.
"""

from protocol import cbor, record
from protocol.errors import CborError, VerifyError

try:
    import cbor2
except ImportError:   # cbor2 is optional: without it every decode is the reference one
    cbor2 = None

_LOW, _HIGH = -2 ** 64, 2 ** 64 - 1


_SCALARS = (bytes, str, bool, type(None))


def _plain(value, depth, ordered):
    """Whether ``value`` is plain subset data; appends to ``ordered`` False for a map whose key
    order this walk could not check by itself. Scalars inside containers are checked in the
    loop, containers by recursion."""
    kind = type(value)
    if kind is int:
        return _LOW <= value <= _HIGH
    if kind in _SCALARS:
        return True
    if depth >= cbor.MAX_DEPTH:
        return False
    if kind is list:
        items = value
    elif kind is dict:
        last = -1
        for key in value:
            if type(key) is int and not _LOW <= key <= _HIGH:
                return False   # cbor2 would write a bignum tag the reference refuses
            if type(key) is int and key >= 0 and last is not None:
                if key <= last:
                    ordered.append(False)
                last = key
            elif type(key) is int or type(key) is str:
                last = None
                ordered.append(False)
            else:
                return False
        items = value.values()
    else:
        return False
    for item in items:
        t = type(item)
        if t is int:
            if not _LOW <= item <= _HIGH:
                return False
        elif t not in _SCALARS and not _plain(item, depth + 1, ordered):
            return False
    return True


def _fast(data):
    """The decoded value when cbor2 reads it as the reference would, else None."""
    try:
        value = cbor2.loads(data, allow_duplicate_keys=False, allow_indefinite=False)
    except Exception:   # any refusal or oddity: the reference decides
        return None
    ordered = []
    if not _plain(value, 0, ordered):
        return None
    try:
        again = cbor2.dumps(value, canonical=bool(ordered))
    except Exception:
        return None
    if again != data:
        return None
    return (value,)


def encode(value):
    """protocol.cbor.encode(value), faster: the same bytes, or the same CborError."""
    if cbor2 is not None and _plain(value, 0, []):
        try:
            return cbor2.dumps(value, canonical=True)
        except Exception:   # e.g. a lone surrogate in a text: the reference names it
            pass
    return cbor.encode(value)


def decode(data):
    """protocol.cbor.decode(data), faster: the same value, or the same CborError."""
    data = bytes(data)
    if cbor2 is not None:
        got = _fast(data)
        if got is not None:
            return got[0]
    return cbor.decode(data)


def decode_record(rec, index=None):
    """protocol.record.decode(rec, index) with this decoder: (body map, body bytes, signature);
    VERIFY_RECORD as the reference raises it."""
    where = "record" if index is None else "record %d (index %d)" % (index + 1, index)
    if len(rec) <= record.SIG_LEN:
        raise VerifyError("VERIFY_RECORD", "%s is too short" % where, index)
    body = bytes(rec[:-record.SIG_LEN])
    got = _fast(body) if cbor2 is not None else None
    if got is None or not isinstance(got[0], dict):
        return record.decode(rec, index)   # the reference, with its own errors
    return got[0], body, bytes(rec[-record.SIG_LEN:])


__all__ = ("CborError", "encode", "decode", "decode_record")
