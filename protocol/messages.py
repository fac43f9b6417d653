"""Message table: ids, field keys and field types, as data, plus encode/decode by name.

Every frame payload is a canonical CBOR map. Key 0 is the message id; in a response key 1 is the
status (0 = OK, otherwise an error code from protocol/errors.py) and key 2 the error detail text.
Other keys are message fields, numbered from 3 per message as listed below; PROTOCOL.md documents
the same table (a test checks they agree).  Ids and keys are never reused once published.
"""

from protocol import cbor
from protocol.errors import CborError, MessageError

K_MSG, K_STATUS, K_DETAIL = 0, 1, 2
OK = 0

# Nonce states reported by STATUS and ABORT.
UNKNOWN, PREPARED, COMMITTED, ABORTED, EXPIRED = 0, 1, 2, 3, 4
STATE_NAMES = {UNKNOWN: "unknown", PREPARED: "prepared", COMMITTED: "committed",
               ABORTED: "aborted", EXPIRED: "expired"}

# id: (name, request fields, response fields). A field list is text, "key name type key name type
# ...": on a board one string costs a third of the RAM the same table as dicts of tuples would
# (fields_of turns it into {key: (name, type)} when a message is packed or unpacked).
# Types: int, bytes, str, bool, list, map, and "?int" for an int that may be null.
MESSAGES = {
    1: ("INFO", "",
                "3 device_id str 4 firmware str 5 protocol int 6 public_key bytes 7 counter int 8 seq int "
                "9 last_hash bytes 10 clock ?int 11 pending int 12 journal_used int 13 journal_size int "
                "14 max_pending int 15 nonce_ttl int 16 max_payload int 17 max_invoice int "
                "18 last_time int 19 fault str 20 certificate bytes 21 first_live int 22 archived_seq int "
                "23 fill_ppm int 24 invoice_room int 25 reserve int 26 profile_id str 27 profile_hash bytes"),
    2: ("PING", "3 data bytes",
                "3 data bytes"),
    3: ("SET_TIME", "3 time int",
                    "3 time int 4 journaled bool"),
    4: ("PREPARE", "3 total int 4 offset int 5 data bytes 6 request_id bytes",
                   "3 received int 4 nonce bytes 5 expires int 6 invoice_hash bytes 7 subtotal int "
                   "8 total_vat int 9 total int 10 currency str 11 sealed map 12 replayed bool"),
    5: ("COMMIT", "3 nonce bytes",
                  "3 sealed map 4 replayed bool"),
    6: ("ABORT", "3 nonce bytes",
                 "3 state int"),
    7: ("STATUS", "3 nonce bytes 4 request_id bytes",
                  "3 state int 4 sealed map 5 expires int 6 nonce bytes"),
    8: ("READ_JOURNAL", "3 first int 4 count int",
                        "3 records list 4 next int 5 last int 6 first_live int"),
    9: ("PROVISION", "",
                     "3 device_id str 4 public_key bytes 5 created bool"),
    10: ("CERTIFY", "3 certificate bytes",
                    "3 stored bool"),
    11: ("SEAL", "3 request_id bytes 4 total int 5 offset int 6 data bytes",
                 "3 received int 4 sealed map 5 replayed bool"),
    12: ("HEAD", "3 challenge bytes",
                 "3 statement bytes 4 signature bytes"),
    13: ("ARCHIVED", "3 seq int 4 hash bytes",
                     "3 checkpoint_seq int 4 first_live int 5 erased_sectors int"),
    14: ("PROFILE", "3 data bytes",
                    "3 installed bool 4 profile_id str 5 profile_hash bytes"),
    15: ("PROFILE_READ", "",
                         "3 data bytes 4 profile_id str 5 profile_hash bytes"),
    16: ("EVIDENCE", "3 record bytes 4 prev bytes 5 credited list 6 proof bytes",
                     "3 original int 4 remaining list 5 armed int"),
    17: ("CLOSE", "3 kind str 4 period str 5 offset int 6 records list 7 last bool",
                  "3 received int 4 record bytes 5 hash bytes 6 seq int"),
    18: ("X", "",
              "3 figures map"),
    19: ("SEAL_BATCH", "3 total int 4 offset int 5 data bytes",
                       "3 received int 4 results list 5 first int 6 prev bytes 7 records list 8 last int"),
}

# Request fields that may be absent (every other request field is required). STATUS takes exactly
# one of nonce or request_id; the handler checks that.
OPTIONAL = {7: (3, 4)}


def fields_of(spec):
    """{key: (name, type)} of a field list of MESSAGES."""
    words = spec.split()
    out = {}
    for i in range(0, len(words), 3):
        out[int(words[i])] = (words[i + 1], words[i + 2])
    return out


def msg_id(name):
    for mid in MESSAGES:
        if MESSAGES[mid][0] == name:
            return mid
    raise KeyError(name)


def _type_ok(value, kind):
    if kind == "?int":
        return value is None or _type_ok(value, "int")
    if kind == "bool":
        return value is True or value is False
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {"bytes": bytes, "str": str, "list": list, "map": dict}[kind])


def _pack(mid, spec, fields, extra):
    spec = fields_of(spec)
    out = dict(extra)
    out[K_MSG] = mid
    for key in spec:
        name, kind = spec[key]
        if name in fields and (fields[name] is not None or kind == "?int"):
            out[key] = fields[name]
    return cbor.encode(out)


def _in_order(keys):
    """Map keys in one order on every port (MicroPython dicts keep none), so a request with several
    faults gets the same error on a board as in CPython: integers first, then text."""
    return sorted(keys, key=lambda k: (isinstance(k, str), k))


def _unpack(mapping, spec, required, optional=()):
    spec = fields_of(spec)
    fields = {}
    for key in _in_order(mapping):
        if key in (K_MSG, K_STATUS, K_DETAIL):
            continue
        if key not in spec:
            raise MessageError("MESSAGE_FIELD", "unknown field key %r" % (key,))
        name, kind = spec[key]
        if not _type_ok(mapping[key], kind):
            raise MessageError("MESSAGE_FIELD", "field %s must be %s" % (name, kind))
        fields[name] = mapping[key]
    if required:
        for key in sorted(spec):
            if spec[key][0] not in fields and key not in optional:
                raise MessageError("MESSAGE_FIELD", "missing field %s" % spec[key][0])
    return fields


def encode_request(name, **fields):
    mid = msg_id(name)
    return _pack(mid, MESSAGES[mid][1], fields, {})


def _known_id(mid):
    # Test the type first: a list or map as id is unhashable and must not raise TypeError.
    return isinstance(mid, int) and not isinstance(mid, bool) and mid in MESSAGES


def parse_request(payload):
    """Payload bytes -> (message id, raw map). Raises CborError or MessageError."""
    mapping = cbor.decode(payload)
    if not isinstance(mapping, dict) or K_MSG not in mapping:
        raise MessageError("MESSAGE_FIELD", "request must be a map holding the message id at key 0")
    if not _known_id(mapping[K_MSG]):
        raise MessageError("MESSAGE_UNKNOWN", "message id %r is not known" % (mapping[K_MSG],))
    return mapping[K_MSG], mapping


def request_fields(mid, mapping):
    """Checked request fields by name for message ``mid``. Raises MessageError."""
    return _unpack(mapping, MESSAGES[mid][1], True, OPTIONAL.get(mid, ()))



def encode_response(name, fields):
    mid = msg_id(name)
    return _pack(mid, MESSAGES[mid][2], fields, {K_STATUS: OK})


def encode_error(mid, error):
    """Error response to message ``mid`` (0 when the request could not be read)."""
    return cbor.encode({K_MSG: mid, K_STATUS: error.code, K_DETAIL: error.detail})


def decode_response(payload):
    """Payload -> (name, status, detail, fields). Errors come back with status != OK, not raised."""
    mapping = cbor.decode(payload)
    if not isinstance(mapping, dict) or K_MSG not in mapping or K_STATUS not in mapping:
        raise CborError("response is not a map with message id and status")
    mid = mapping[K_MSG]
    name = MESSAGES[mid][0] if _known_id(mid) else None
    if mapping[K_STATUS] != OK:
        return name, mapping[K_STATUS], mapping.get(K_DETAIL, ""), {}
    if name is None:
        raise MessageError("MESSAGE_UNKNOWN", "response to unknown message id %r" % (mid,))
    return name, OK, "", _unpack(mapping, MESSAGES[mid][2], False)
