"""Error codes of the fiscal protocol, as data, and the one error hierarchy of the device side.

Every refusal the device (or a shared codec) can produce has a stable numeric code, a name and a
one-line meaning here.  PROTOCOL.md reproduces this table; `tests/test_protocol_doc.py` checks
that the two agree.  Codes are never reused: a retired code stays in the table marked as such.

The classes exist so callers can catch a family (``except NonceError``) while the wire only
carries ``code`` and ``detail``.  Runs unchanged in MicroPython (no enum, no dataclasses).
"""

# code: (name, family, meaning)
ERRORS = {
    0x01: ("FRAME_MALFORMED", "frame", "frame header carries an unknown protocol version"),
    0x02: ("FRAME_OVERSIZE", "frame", "frame payload is longer than MAX_PAYLOAD; refused before reading it"),
    0x03: ("FRAME_CRC", "frame", "frame CRC-32 does not match its contents"),
    0x10: ("CBOR_MALFORMED", "cbor", "payload is not canonical CBOR of the accepted subset"),
    0x11: ("MESSAGE_UNKNOWN", "message", "message id is not in the message table"),
    0x12: ("MESSAGE_FIELD", "message", "a message field is missing, unknown or of the wrong type"),
    0x20: ("INVOICE_MALFORMED", "invoice", "canonical invoice: missing field, unknown field or wrong type"),
    0x21: ("INVOICE_TYPE_INVALID", "invoice", "invoice_type is not one of the five invoice types"),
    0x22: ("CLIENT_CLASS_INVALID", "invoice", "client classification is not one of the five classes"),
    0x23: ("TAX_GROUP_UNKNOWN", "invoice", "an item or tax line names a tax group not in force at the invoice time"),
    0x24: ("TAX_RATE_MISMATCH", "invoice", "a tax line's rate differs from the manifest rate in force"),
    0x25: ("TAX_BASE_MISMATCH", "invoice", "a tax line's base differs from the sum of its items"),
    0x26: ("TAX_AMOUNT_MISMATCH", "invoice", "a tax line's tax differs from round_half_up(base x rate)"),
    0x27: ("TAX_GROUPS_MISMATCH", "invoice", "tax lines do not list exactly the groups used by the items, in order"),
    0x28: ("TOTALS_MISMATCH", "invoice", "subtotal, total_vat or total differs from the tax lines"),
    0x29: ("PAYMENTS_MISMATCH", "invoice", "the payments do not add up to the total"),
    0x2A: ("CURRENCY_INVALID", "invoice", "currency unsupported, or a payment currency differs from the invoice's"),
    0x2B: ("INVOICE_TOO_LARGE", "invoice", "canonical invoice is longer than MAX_INVOICE"),
    0x2C: ("CHUNK_SEQUENCE", "invoice", "PREPARE chunk offset or total does not continue the upload in progress"),
    0x2D: ("INVOICE_TIMESTAMP", "invoice", "invoice timestamp is not YYYY-MM-DDTHH:MM:SSZ"),
    0x2E: ("AMOUNT_INVALID", "invoice", "an amount or quantity is negative, zero where it must not be, or too large"),
    0x30: ("NONCE_UNKNOWN", "nonce", "the nonce was never issued by this device since power-up, or was lost"),
    0x31: ("NONCE_EXPIRED", "nonce", "the nonce expired before COMMIT"),
    0x32: ("NONCE_ABORTED", "nonce", "the nonce was aborted"),
    0x33: ("TOO_MANY_PENDING", "nonce", "the pending PREPARE limit is reached; COMMIT or ABORT one first"),
    0x34: ("NONCE_COMMITTED", "nonce", "the nonce is already committed; it can no longer be aborted"),
    0x40: ("CLOCK_UNSET", "clock", "the clock was not set since power-up"),
    0x41: ("CLOCK_BACKWARDS", "clock", "the new time is earlier than the last journal record"),
    0x42: ("TIME_INVALID", "clock", "the time value is out of the accepted range"),
    0x50: ("JOURNAL_FULL", "journal", "the journal partition has no room for another record"),
    0x51: ("STORAGE_FAILURE", "journal", "a flash program failed; nothing was sealed"),
    0x52: ("RANGE_INVALID", "journal", "READ_JOURNAL range is outside the journal"),
    0x53: ("JOURNAL_CORRUPT", "journal", "the journal is damaged before its end; the device stops writing"),
    0x60: ("VERIFY_RECORD", "verify", "a journal record cannot be decoded"),
    0x61: ("VERIFY_SIGNATURE", "verify", "a journal record's signature does not verify"),
    0x62: ("VERIFY_CHAIN", "verify", "a journal record does not chain to the one before it"),
    0x63: ("VERIFY_COUNTER", "verify", "record sequence or fiscal counter is not continuous"),
    0x64: ("VERIFY_TIME", "verify", "a journal record's time goes back"),
    0x65: ("VERIFY_KEY", "verify", "the public key or certificate is unusable"),
    0x70: ("NOT_PROVISIONED", "identity", "the device has no key yet; send PROVISION first"),
    0x71: ("CERT_REFUSED", "identity", "the certificate is malformed or names another device or key"),
    0x72: ("CERT_PRESENT", "identity", "a different certificate is already stored; it is never replaced"),
    0x73: ("KEY_MISSING", "identity", "the journal has records but the device key is gone; the device stays read-only"),
    0x74: ("KEYSTORE_FAILURE", "identity", "the key, certificate or anchor could not be read or stored"),
    0x75: ("JOURNAL_MISMATCH", "identity", "the device key started another journal; the device stays read-only"),
}

_BY_NAME = {}


def code_of(name):
    """Return the numeric code of error ``name`` (the table is the single source)."""
    if not _BY_NAME:
        for code in ERRORS:
            _BY_NAME[ERRORS[code][0]] = code
    return _BY_NAME[name]


def name_of(code):
    """Return the symbolic name of ``code``, or ``UNKNOWN_0x..`` for a code this side lacks."""
    entry = ERRORS.get(code)
    return entry[0] if entry else "UNKNOWN_0x%02X" % code


class FiscalError(Exception):
    """Base of every typed refusal on the device side and in the shared codecs.

    ``code`` is the wire code from ERRORS, ``detail`` a human sentence naming what was wrong
    (a field path where there is one).
    """

    family = None

    def __init__(self, name, detail=""):
        self.code = code_of(name)
        self.name = name
        self.detail = detail
        # super(), not Exception.__init__: MicroPython's Exception has no __init__ attribute.
        super().__init__("%s: %s" % (name, detail) if detail else name)


class FrameError(FiscalError):
    family = "frame"


class CborError(FiscalError):
    family = "cbor"

    def __init__(self, detail=""):
        FiscalError.__init__(self, "CBOR_MALFORMED", detail)


class MessageError(FiscalError):
    family = "message"


class InvoiceError(FiscalError):
    family = "invoice"


class NonceError(FiscalError):
    family = "nonce"


class ClockError(FiscalError):
    family = "clock"


class JournalError(FiscalError):
    family = "journal"


class IdentityError(FiscalError):
    family = "identity"


class VerifyError(FiscalError):
    """A journal failed verification; ``index`` is the 0-based position of the bad record."""

    family = "verify"

    def __init__(self, name, detail="", index=None):
        FiscalError.__init__(self, name, detail)
        self.index = index


class PowerCut(BaseException):
    """Raised by fault-injecting flash ports to simulate power loss mid-operation.

    A BaseException on purpose: nothing in the core may catch it, exactly as nothing runs after
    the supply really drops.  Tests catch it and reload the core from the same flash.
    """
