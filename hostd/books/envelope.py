"""Response shapes of the POS API (seed 002 "Response structure" and "Error handling").

A sealed invoice answers ``{status, code, payload{fiscal_number, auth_code, timestamp,
qr_payload, fiscal_authority_id, dgi_status, ledger_hash, security_elements}}`` plus what anyone
needs to verify it: the device counter, the exact signed record, its signature and the previous
record's hash (hex; protocol 2 signs it without storing it, so with it one receipt verifies
alone: PROTOCOL.md "Verifying a receipt"). Every value comes from the device's sealed result; the
host only changes encodings.

Bodies are serialised deterministically (sorted keys, compact), so a response rebuilt after a
crash from STATUS is byte-identical to the one built from COMMIT: that is what makes an
Idempotency-Key retry return the same bytes whichever path produced them.
"""

import json

from protocol import record

HTTP_FOR = {
    "INVALID_CANONICAL_PAYLOAD": 400, "UNAUTHORIZED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404,
    "IDEMPOTENCY_KEY_REUSED": 422, "FISCALIZATION_FAILED": 422, "RATE_LIMIT_EXCEEDED": 429,
    "PAYLOAD_TOO_LARGE": 413, "DEVICE_UNAVAILABLE": 503, "DEVICE_TIMEOUT": 503, "INTERNAL_ERROR": 500,
    "VERIFICATION_FAILED": 500, "INVALID_REQUEST": 400, "REQUEST_TIMEOUT": 408, "STORE_UNAVAILABLE": 503,
    "REPORT_REFUSED": 409,
    # credit notes (issue 11; hostd/errors.py CreditRefused)
    "ORIGINAL_NOT_FOUND": 404, "ORIGINAL_IS_CREDIT": 422, "ORIGINAL_SETTLED": 409, "CREDIT_EXCEEDS_BALANCE": 422,
    "CREDIT_CURRENCY_MISMATCH": 422, "CREDIT_KIND_MISMATCH": 422, "REFUND_AMOUNT_UNREACHABLE": 422,
    "ORIGINAL_CONTENT_MISSING": 409, "CREDIT_BOOKS_INCOMPLETE": 409,
}


def dumps(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sealed_payload(sealed, dgi_status="queued"):
    """The seed's sealed payload from a device sealed-result map (S_* keys)."""
    elements = {
        "fiscal_number": sealed[record.S_FISCAL_NUMBER],
        "auth_code": sealed[record.S_AUTH_CODE],
        "timestamp": sealed[record.S_TIMESTAMP],
        "qr_payload": sealed[record.S_QR],
        "fiscal_authority_id": sealed[record.S_DEVICE],
    }
    payload = dict(elements)
    payload.update({
        "dgi_status": dgi_status,
        "ledger_hash": sealed[record.S_LEDGER_HASH].hex(),
        "security_elements": elements,
        "counter": sealed[record.S_COUNTER],
        "signed_record": sealed[record.S_RECORD].hex(),
        "signature": sealed[record.S_SIGNATURE].hex(),
        "previous_hash": sealed[record.S_PREVIOUS_HASH].hex(),
    })
    return payload


def sealed_body(sealed):
    return dumps({"status": "ok", "code": "INVOICE_FISCALIZED", "payload": sealed_payload(sealed)})


def error_body(code, detail, field=None, retry_after=None, device_code=None):
    doc = {"status": "error", "code": code, "detail": detail}
    if field is not None:
        doc["field"] = field
    if retry_after is not None:
        doc["retry_after"] = retry_after
    if device_code is not None:
        doc["device_code"] = device_code
    return dumps(doc)



def error_of(exc):
    """(HTTP status, body bytes, retry seconds or None) of a HostdError: the one translation of a
    host error into the seed's envelope (the API middleware, batch items, stored answers)."""
    retry = getattr(exc, "retry", None)
    body = error_body(exc.code, exc.detail, exc.field, retry, getattr(exc, "device_code", None))
    return HTTP_FOR.get(exc.code, 500), body, retry
