"""The error table of PROTOCOL.md section 5: code, name, family and meaning of every error.

Codes and names are defined once, in protocol/errors.py ``CODES_TEXT`` (all the device needs);
families and meanings live here, for hosts, verifiers and the documentation, so a board never
loads this text. Importing this module fails if a code lacks its meaning.
"""

from protocol.errors import codes

# name: (family, meaning)
MEANINGS = {
    "FRAME_MALFORMED": ("frame", "frame header carries an unknown protocol version"),
    "FRAME_OVERSIZE": ("frame", "frame payload is longer than MAX_PAYLOAD; refused before reading it"),
    "FRAME_CRC": ("frame", "frame CRC-32 does not match its contents"),
    "CBOR_MALFORMED": ("cbor", "payload is not canonical CBOR of the accepted subset"),
    "MESSAGE_UNKNOWN": ("message", "message id is not in the message table"),
    "MESSAGE_FIELD": ("message", "a message field is missing, unknown or of the wrong type"),
    "INVOICE_MALFORMED": ("invoice", "canonical invoice: missing field, unknown field or wrong type"),
    "INVOICE_TYPE_INVALID": ("invoice", "invoice_type is not one of the five invoice types"),
    "CLIENT_CLASS_INVALID": ("invoice", "client classification is not one of the five classes"),
    "TAX_GROUP_UNKNOWN": ("invoice", "an item or tax line names a tax group not in force at the invoice time"),
    "TAX_RATE_MISMATCH": ("invoice", "a tax line's rate differs from the manifest rate in force"),
    "TAX_BASE_MISMATCH": ("invoice", "a tax line's base differs from the sum of its items"),
    "TAX_AMOUNT_MISMATCH": ("invoice", "a tax line's tax differs from round_half_up(base x rate)"),
    "TAX_GROUPS_MISMATCH": ("invoice", "tax lines do not list exactly the groups used by the items, in order"),
    "TOTALS_MISMATCH": ("invoice", "subtotal, total_vat or total differs from the tax lines"),
    "PAYMENTS_MISMATCH": ("invoice", "the payments do not add up to the total"),
    "CURRENCY_INVALID": ("invoice", "currency unsupported, or a payment currency differs from the invoice's"),
    "INVOICE_TOO_LARGE": ("invoice", "canonical invoice is longer than MAX_INVOICE"),
    "CHUNK_SEQUENCE": ("invoice", "PREPARE chunk offset or total does not continue the upload in progress"),
    "INVOICE_TIMESTAMP": ("invoice", "invoice timestamp is not YYYY-MM-DDTHH:MM:SSZ"),
    "AMOUNT_INVALID": ("invoice", "an amount or quantity is negative, zero where it must not be, or too large"),
    "NONCE_UNKNOWN": ("nonce", "the nonce was never issued by this device since power-up, or was lost"),
    "NONCE_EXPIRED": ("nonce", "the nonce expired before COMMIT"),
    "NONCE_ABORTED": ("nonce", "the nonce was aborted"),
    "TOO_MANY_PENDING": ("nonce", "the pending PREPARE limit is reached; COMMIT or ABORT one first"),
    "NONCE_COMMITTED": ("nonce", "the nonce is already committed; it can no longer be aborted"),
    "REQUEST_ID_REUSED": ("nonce", "the request id was already used for a different invoice"),
    "CLOCK_UNSET": ("clock", "the clock was not set since power-up"),
    "CLOCK_BACKWARDS": ("clock", "the new time is earlier than the last journal record"),
    "TIME_INVALID": ("clock", "the time value is out of the accepted range"),
    "JOURNAL_FULL": ("journal", "the journal partition has no room for another record"),
    "STORAGE_FAILURE": ("journal", "a flash program failed; nothing was sealed"),
    "RANGE_INVALID": ("journal", "READ_JOURNAL range is outside the journal"),
    "JOURNAL_CORRUPT": ("journal", "the journal is damaged before its end; the device stops writing"),
    "ARCHIVE_HASH_MISMATCH": ("journal", "ARCHIVED names a hash that is not the device's hash of that record"),
    "ARCHIVE_RANGE": ("journal", "ARCHIVED names a record outside the live journal"),
    "VERIFY_RECORD": ("verify", "a journal record cannot be decoded"),
    "VERIFY_SIGNATURE": ("verify", "a journal record's signature does not verify"),
    "VERIFY_CHAIN": ("verify", "a journal record does not chain to the one before it"),
    "VERIFY_COUNTER": ("verify", "record sequence or fiscal counter is not continuous"),
    "VERIFY_TIME": ("verify", "a journal record's time goes back"),
    "VERIFY_KEY": ("verify", "the public key or certificate is unusable"),
    "VERIFY_SCHEMA": ("verify", "a record breaks the record schema: a key missing, unknown, mistyped or of the wrong size"),
    "VERIFY_AMOUNTS": ("verify", "an invoice record's groups, rates, rounding or total are wrong"),
    "VERIFY_TOTALS": ("verify", "a checkpoint's running totals differ from the records"),
    "VERIFY_ORDER": ("verify", "a record appears where the journal rules forbid it"),
    "VERIFY_REQUEST_ID": ("verify", "a request id is sealed twice"),
    "VERIFY_ARCHIVED": ("verify", "a checkpoint's archived seq or hash disagrees with the chain"),
    "VERIFY_HEAD": ("verify", "the signed head does not verify or does not match the records"),
    "VERIFY_EXPORT": ("verify", "the export file is malformed, or its key, certificate or device disagree"),
    "NOT_PROVISIONED": ("identity", "the device has no key yet; send PROVISION first"),
    "CERT_REFUSED": ("identity", "the certificate is malformed or names another device or key"),
    "CERT_PRESENT": ("identity", "a different certificate is already stored; it is never replaced"),
    "KEY_MISSING": ("identity", "the journal has records but the device key is gone; the device stays read-only"),
    "KEYSTORE_FAILURE": ("identity", "the key, certificate or anchor could not be read or stored"),
    "JOURNAL_MISMATCH": ("identity", "the device key started another journal; the device stays read-only"),
    "ARCHIVE_OPEN_PERIOD": ("journal", "ARCHIVED would erase records of the open period (after the last Z closure)"),
    "PROFILE_MISSING": ("profile", "no tax profile is installed (or it is not journaled); send PROFILE first"),
    "PROFILE_INVALID": ("profile", "the tax profile is malformed or breaks a profile limit"),
    "PROFILE_LOCKED": ("profile", "a different tax profile after the first invoice; the profile is never replaced then"),
    "GROUP_NOT_FOR_TYPE": ("invoice", "a tax group the profile does not allow for the invoice type"),
    "GROUP_NOT_FOR_CLASS": ("invoice", "a tax group the profile does not allow for the client classification"),
    "INVOICE_TIME_WINDOW": ("invoice", "the invoice timestamp is outside the profile's window around the device clock"),
    "CREDIT_ORIGINAL_UNKNOWN": ("credit", "the credit names a fiscal number this device never sealed"),
    "CREDIT_OF_CREDIT": ("credit", "the original named by a credit is itself a credit"),
    "CREDIT_EVIDENCE_MISSING": ("credit", "no evidence for the original is armed; send EVIDENCE first"),
    "CREDIT_EVIDENCE_STALE": ("credit", "the evidence does not match the device's credit root: stale or altered"),
    "CREDIT_EVIDENCE_INVALID": ("credit", "the evidence is not a genuine invoice record of this device"),
    "CREDIT_CURRENCY": ("credit", "the credit's currency differs from the original's"),
    "CREDIT_KIND": ("credit", "credit_note must credit a sale or advance, export_credit an export"),
    "CREDIT_EXCEEDS": ("credit", "a tax group would be credited beyond the original's remaining balance"),
    "CREDIT_SETTLED": ("credit", "the original is fully credited already: nothing remains to credit"),
    "CLOSE_PERIOD": ("closure", "the closure period is malformed, out of order or in the future"),
    "CLOSE_SEQUENCE": ("closure", "a CLOSE chunk does not continue the closure in progress"),
    "CLOSE_RECORD": ("closure", "a record sent to CLOSE is not a genuine closure of this device of the kind needed"),
    "CLOSE_CHAIN": ("closure", "a closure sent to CLOSE does not chain to the one before it, or lies outside the period"),
    "CLOSE_INCOMPLETE": ("closure", "the closures sent stop before the device's latest one without a following one"),
    "VERIFY_PROFILE": ("verify", "the tax profile is missing or does not match the journal's profile hash"),
    "VERIFY_CREDIT": ("verify", "a credit record breaks the credit rules or the credit root"),
    "VERIFY_CLOSURE": ("verify", "a closure's figures, Merkle root or chain disagree with the records"),
    "VERIFY_PROOF": ("verify", "an inclusion proof does not lead from the record to the closure's Merkle root"),
    "BATCH_MALFORMED": ("message", "a SEAL_BATCH document is not 1 to 16 [request id, invoice] entries within MAX_BATCH"),
    "BATCH_CREDIT": ("message", "a credit type cannot be sealed in SEAL_BATCH: EVIDENCE, then SEAL it alone"),
}


def table():
    """{code: (name, family, meaning)} for every code of protocol/errors.py."""
    out = {}
    names = codes()
    for name in names:
        out[names[name]] = (name,) + MEANINGS[name]
    return out


ERRORS = table()
