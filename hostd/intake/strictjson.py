"""The one strict JSON reader for everything a POS sends (RFC 8259, plus the limits below).

Why not plain ``json.loads``: it accepts a UTF-8 BOM on bytes (and the store then kept text that
no later parse accepted, issue 8), lets the last of two duplicate keys win silently at any depth,
recurses into ``[[[[…`` until RecursionError, hands a 1,000,000-digit exponent to Decimal (25 s
of CPU in ``int()``), and passes lone surrogates (``"\\ud800"``) that no UTF-8 encoder takes.
Here every one of those is a typed ``InvalidPayload`` naming the field, decided in work bounded
by the body size (the API caps that at 256 KiB):

- the body must be UTF-8 without a BOM (RFC 8259 section 8.1: "MUST NOT add a byte order
  mark"); UTF-16/32 (a BOM, or NUL bytes) is named as such;
- no duplicate key in any object (section 4 leaves the behaviour open; a fiscal amount must not
  depend on which duplicate a parser keeps);
- nesting at most ``MAX_DEPTH`` deep; a number literal at most ``MAX_NUMBER`` characters; a
  string at most ``MAX_STRING`` characters, every string (keys too) encodable as UTF-8;
- ``NaN``/``Infinity`` refused (not JSON).

Numbers come back as ``int`` (integer literals) or ``decimal.Decimal`` (anything with a fraction
or exponent), never ``float``. Objects come back as dicts in the order of the text (duplicates
are refused, so that order is exactly what the POS sent). ``dumps`` writes such values back as
JSON text, numbers as the numbers they were (a Decimal as its exact text, never a float).
"""

import json
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring as _quote   # json.dumps(text, ensure_ascii=False), in C

from hostd.errors import InvalidPayload

MAX_DEPTH = 8
MAX_NUMBER = 40
MAX_STRING = 4096
_BOMS = ((b"\xef\xbb\xbf", "UTF-8 with a byte order mark"), (b"\x00\x00\xfe\xff", "UTF-32"),
         (b"\xff\xfe\x00\x00", "UTF-32"), (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))


class _Object(list):
    """An object's (key, value) pairs as parsed, checked for duplicates by the walk."""


class _Number(str):
    """A number literal, converted by the walk once its length is checked."""


def _no_constant(name):
    raise InvalidPayload("%s is not JSON; send a number or a decimal string" % name)


def text_of(raw, field="body"):
    """Bytes -> text: UTF-8 without a BOM, or InvalidPayload naming the encoding."""
    if isinstance(raw, str):
        return raw
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise InvalidPayload("%s is %s; send UTF-8 without a byte order mark" % (field, name), field)
    if b"\x00" in raw:
        raise InvalidPayload("%s contains NUL bytes (UTF-16 or UTF-32?); send UTF-8" % field, field)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload("%s is not UTF-8: invalid byte at offset %d" % (field, exc.start), field)


def loads(raw, field="body"):
    """Parse ``raw`` (bytes or text) strictly; return plain Python values or raise InvalidPayload."""
    text = text_of(raw, field)
    try:
        parsed = json.loads(text, object_pairs_hook=_Object, parse_float=_Number, parse_int=_Number,
                            parse_constant=_no_constant)
    except RecursionError:
        raise InvalidPayload("%s is nested deeper than %d levels" % (field, MAX_DEPTH), field)
    except ValueError as exc:   # JSONDecodeError is a ValueError
        raise InvalidPayload("%s is not valid JSON: %s" % (field, exc), field)
    # text decoded from UTF-8 holds no lone surrogate: only a \u escape can make one
    return _walk(parsed, None, 0, isinstance(raw, str) or "\\u" in text)


def _name(path):
    """The field name of a walk position: ``None`` (the body), or (parent, key or index)."""
    if path is None:
        return ""
    parent, part = path
    above = _name(parent)
    if type(part) is int:
        return "%s[%d]" % (above, part)
    return "%s.%s" % (above, part) if above else part


def _walk(value, path, depth, escaped):
    """Check one parsed value (limits, duplicates, strings) and convert it; iterative enough:
    depth is bounded by MAX_DEPTH before recursing further. ``path`` is named only for an error
    (``_name``); ``escaped``: the text had a \\u escape, so a string may hold a lone surrogate."""
    kind = type(value)
    if kind is _Object or kind is list:
        if depth >= MAX_DEPTH:
            where = _name(path) or "body"
            raise InvalidPayload("%s is nested deeper than %d levels" % (where, MAX_DEPTH), where)
        if kind is list:
            return [_walk(value[i], (path, i), depth + 1, escaped) for i in range(len(value))]
        out = {}
        for key, item in value:
            if escaped or len(key) > MAX_STRING:
                _check_text(key, (path, key))
            if key in out:
                sub = _name((path, key))
                raise InvalidPayload("duplicate key %s" % sub, sub)
            out[key] = _walk(item, (path, key), depth + 1, escaped)
        return out
    if kind is _Number:
        if len(value) > MAX_NUMBER:
            where = _name(path) or "body"
            raise InvalidPayload("%s is a number of %d characters; at most %d" % (where, len(value), MAX_NUMBER),
                                 where)
        if value.lstrip("-").isdigit():
            return int(value)
        try:
            return Decimal(value)
        except InvalidOperation:   # an exponent beyond what Decimal represents at all
            where = _name(path) or "body"
            raise InvalidPayload("%s=%s is out of range" % (where, value), where)
    if kind is str and (escaped or len(value) > MAX_STRING):
        _check_text(value, path)
    return value


def _check_text(text, path):
    if len(text) > MAX_STRING:
        where = _name(path) or "body"
        raise InvalidPayload("%s is a text of %d characters; at most %d" % (where, len(text), MAX_STRING), where)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        where = _name(path) or "body"
        raise InvalidPayload("%s holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not a character"
                             % where, where)


def dumps(value):
    """JSON text of what ``loads`` gives (dicts, lists, text, int, Decimal, bool, None), compact,
    in the dicts' order; a Decimal is written as the exact number it is, not as a string. Text is
    quoted by the json module's own C quoting (what ``json.dumps(text, ensure_ascii=False)``
    calls): the daemon writes every undated invoice's completed document with this (issue 15)."""
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, dict):
        return "{" + ",".join((_quote(k) if isinstance(k, str) else json.dumps(k, ensure_ascii=False)) + ":" + dumps(v)
                              for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join([dumps(v) for v in value]) + "]"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("not a JSON number: %s" % value)
        return str(value)
    raise TypeError("not JSON: %r" % (value,))
