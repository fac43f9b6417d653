"""Error codes of the fiscal protocol, and the one error hierarchy of the device side.

Every refusal the device (or a shared codec) can produce has a stable numeric code and a name
here; its family and one-line meaning are in protocol/error_table.py (``ERRORS``), kept apart so
a board does not hold that text in RAM. PROTOCOL.md reproduces the table;
`tests/test_protocol_doc.py` checks that they agree. Codes are never reused: a retired code stays
in the table marked as such.

The classes exist so callers can catch a family (``except NonceError``) while the wire only
carries ``code`` and ``detail``.  Runs unchanged in MicroPython (no enum, no dataclasses).
"""

# " NAME=hexcode ... ": one string rather than a dict, to spare a board's RAM (code_of reads it).
# Families and meanings are in protocol/error_table.py, which a board never loads.
CODES_TEXT = (
    " FRAME_MALFORMED=01 FRAME_OVERSIZE=02 FRAME_CRC=03 CBOR_MALFORMED=10 MESSAGE_UNKNOWN=11 "
    "MESSAGE_FIELD=12 INVOICE_MALFORMED=20 INVOICE_TYPE_INVALID=21 CLIENT_CLASS_INVALID=22 "
    "TAX_GROUP_UNKNOWN=23 TAX_RATE_MISMATCH=24 TAX_BASE_MISMATCH=25 TAX_AMOUNT_MISMATCH=26 "
    "TAX_GROUPS_MISMATCH=27 TOTALS_MISMATCH=28 PAYMENTS_MISMATCH=29 CURRENCY_INVALID=2A "
    "INVOICE_TOO_LARGE=2B CHUNK_SEQUENCE=2C INVOICE_TIMESTAMP=2D AMOUNT_INVALID=2E NONCE_UNKNOWN=30 "
    "NONCE_EXPIRED=31 NONCE_ABORTED=32 TOO_MANY_PENDING=33 NONCE_COMMITTED=34 REQUEST_ID_REUSED=35 "
    "CLOCK_UNSET=40 CLOCK_BACKWARDS=41 TIME_INVALID=42 JOURNAL_FULL=50 STORAGE_FAILURE=51 "
    "RANGE_INVALID=52 JOURNAL_CORRUPT=53 ARCHIVE_HASH_MISMATCH=54 ARCHIVE_RANGE=55 VERIFY_RECORD=60 "
    "VERIFY_SIGNATURE=61 VERIFY_CHAIN=62 VERIFY_COUNTER=63 VERIFY_TIME=64 VERIFY_KEY=65 "
    "VERIFY_SCHEMA=66 VERIFY_AMOUNTS=67 VERIFY_TOTALS=68 VERIFY_ORDER=69 VERIFY_REQUEST_ID=6A "
    "VERIFY_ARCHIVED=6B VERIFY_HEAD=6C VERIFY_EXPORT=6D NOT_PROVISIONED=70 CERT_REFUSED=71 "
    "CERT_PRESENT=72 KEY_MISSING=73 KEYSTORE_FAILURE=74 JOURNAL_MISMATCH=75 ARCHIVE_OPEN_PERIOD=56 "
    "PROFILE_MISSING=80 PROFILE_INVALID=81 PROFILE_LOCKED=82 GROUP_NOT_FOR_TYPE=83 GROUP_NOT_FOR_CLASS=84 "
    "INVOICE_TIME_WINDOW=85 CREDIT_ORIGINAL_UNKNOWN=90 CREDIT_OF_CREDIT=91 CREDIT_EVIDENCE_MISSING=92 "
    "CREDIT_EVIDENCE_STALE=93 CREDIT_EVIDENCE_INVALID=94 CREDIT_CURRENCY=95 CREDIT_KIND=96 CREDIT_EXCEEDS=97 "
    "CREDIT_SETTLED=98 CLOSE_PERIOD=A0 CLOSE_SEQUENCE=A1 CLOSE_RECORD=A2 CLOSE_CHAIN=A3 CLOSE_INCOMPLETE=A4 "
    "VERIFY_PROFILE=6E VERIFY_CREDIT=6F VERIFY_CLOSURE=B0 VERIFY_PROOF=B1 BATCH_MALFORMED=13 BATCH_CREDIT=14 "
)


def codes():
    """{name: code} of every error."""
    out = {}
    for item in CODES_TEXT.split():
        name, code = item.split("=")
        out[name] = int(code, 16)
    return out


def code_of(name):
    """Return the numeric code of error ``name`` (KeyError for a name not in the table)."""
    at = CODES_TEXT.find(" %s=" % name)
    if at < 0:
        raise KeyError(name)
    at += len(name) + 2
    return int(CODES_TEXT[at:at + 2], 16)


def name_of(code):
    """Return the symbolic name of ``code``, or ``UNKNOWN_0x..`` for a code this side lacks."""
    at = CODES_TEXT.find("=%02X" % code)
    if at < 0:
        return "UNKNOWN_0x%02X" % code
    return CODES_TEXT[CODES_TEXT.rfind(" ", 0, at) + 1:at]


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


class ProfileError(FiscalError):
    family = "profile"


class CreditError(FiscalError):
    family = "credit"


class CloseError(FiscalError):
    family = "closure"


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
