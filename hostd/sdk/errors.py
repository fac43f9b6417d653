"""The SDK's typed errors, one per envelope code of the daemon (seed 003 "Error handling").

Every error keeps the envelope it came from (``envelope``), its HTTP status, ``detail`` and
``field``; a POS branches on the class, shows ``detail``, and retries only what is retryable.
"""

from typing import Any, Dict, Optional

from hostd.errors import HostdError


class SdkError(HostdError):
    code = "SDK_ERROR"
    retryable = False

    def __init__(self, detail: str, field: Optional[str] = None, status: Optional[int] = None,
                 envelope: Optional[Dict[str, Any]] = None) -> None:
        HostdError.__init__(self, detail, field)
        self.status = status
        self.envelope = envelope or {}


class InvalidPayload(SdkError):
    """400: the invoice is wrong (missing field, order, totals); re-author it."""
    code = "INVALID_CANONICAL_PAYLOAD"


class InvalidRequest(SdkError):
    code = "INVALID_REQUEST"


class Unauthorized(SdkError):
    code = "UNAUTHORIZED"


class Forbidden(SdkError):
    code = "FORBIDDEN"


class NotFound(SdkError):
    code = "NOT_FOUND"


class IdempotencyKeyReused(SdkError):
    code = "IDEMPOTENCY_KEY_REUSED"


class FiscalizationFailed(SdkError):
    """422: the device refused for good; ``device_code`` says why (e.g. TAX_RATE_MISMATCH)."""
    code = "FISCALIZATION_FAILED"

    @property
    def device_code(self) -> Optional[str]:
        return self.envelope.get("device_code")


class ReportRefused(SdkError):
    """409: a closure the device or the daemon refused; ``device_code`` (CLOSE_*) says why."""
    code = "REPORT_REFUSED"

    @property
    def device_code(self) -> Optional[str]:
        return self.envelope.get("device_code")


class RateLimited(SdkError):
    """429: wait ``retry_after`` seconds, then retry with the same Idempotency-Key."""
    code = "RATE_LIMIT_EXCEEDED"
    retryable = True

    @property
    def retry_after(self) -> float:
        return float(self.envelope.get("retry_after") or 1)


class DeviceUnavailable(SdkError):
    """503, or the daemon cannot be reached: nothing was sealed; retry (the offline queue does)."""
    code = "DEVICE_UNAVAILABLE"
    retryable = True

    @property
    def retry_after(self) -> Optional[float]:
        """The daemon's Retry-After, or None when it could not be reached at all."""
        value = self.envelope.get("retry_after")
        return None if value is None else float(value)


class OfflineQueueCorrupt(SdkError):
    """The offline queue's storage returned data that cannot be trusted; ``export`` names the
    file its readable contents were saved to before any reset (seed 003)."""
    code = "OFFLINE_QUEUE_CORRUPT"

    def __init__(self, detail: str, export: Optional[str] = None) -> None:
        SdkError.__init__(self, detail)
        self.export = export


class InvalidSignature(SdkError):
    """A webhook delivery whose signature does not verify: do not act on it."""
    code = "INVALID_SIGNATURE"


class CreditRefused(SdkError):
    """A void, refund or credit note the daemon refused before sealing anything (issue 11): the
    subclass says which rule; ``device_code`` names the device's rule when it has one."""
    code = "CREDIT_REFUSED"

    @property
    def device_code(self) -> Optional[str]:
        return self.envelope.get("device_code")


class OriginalNotFound(CreditRefused):
    """404: no sealed invoice with that fiscal number to credit."""
    code = "ORIGINAL_NOT_FOUND"


class OriginalIsCredit(CreditRefused):
    """The original is itself a credit note (a void of a void)."""
    code = "ORIGINAL_IS_CREDIT"


class OriginalSettled(CreditRefused):
    """409: nothing of the original is left to credit (a second full void)."""
    code = "ORIGINAL_SETTLED"


class CreditExceedsBalance(CreditRefused):
    """A tax group would go below zero: more than remains of the original."""
    code = "CREDIT_EXCEEDS_BALANCE"


class CreditCurrencyMismatch(CreditRefused):
    code = "CREDIT_CURRENCY_MISMATCH"


class CreditKindMismatch(CreditRefused):
    """credit_note credits a sale or advance, export_credit an export."""
    code = "CREDIT_KIND_MISMATCH"


class RefundAmountUnreachable(CreditRefused):
    """No credit note totals exactly this amount; ``detail`` names the nearest that do."""
    code = "REFUND_AMOUNT_UNREACHABLE"


class OriginalContentMissing(CreditRefused):
    """409: the daemon lost the original's lines (a lost store): retry the original's own request."""
    code = "ORIGINAL_CONTENT_MISSING"


class CreditBooksIncomplete(CreditRefused):
    """409: the daemon cannot prove what was credited so far (its store lacks erased records)."""
    code = "CREDIT_BOOKS_INCOMPLETE"


BY_CODE = {cls.code: cls for cls in (InvalidPayload, InvalidRequest, Unauthorized, Forbidden, NotFound,
                                     IdempotencyKeyReused, FiscalizationFailed, ReportRefused, RateLimited, DeviceUnavailable,
                                     OriginalNotFound, OriginalIsCredit, OriginalSettled, CreditExceedsBalance,
                                     CreditCurrencyMismatch, CreditKindMismatch, RefundAmountUnreachable,
                                     OriginalContentMissing, CreditBooksIncomplete)}
RETRYABLE_CODES = ("DEVICE_UNAVAILABLE", "DEVICE_TIMEOUT", "STORE_UNAVAILABLE", "RATE_LIMIT_EXCEEDED",
                   "REQUEST_TIMEOUT")


def from_envelope(status: int, doc: Dict[str, Any]) -> SdkError:
    code = doc.get("code", "")
    cls = BY_CODE.get(code)
    if cls is None:
        cls = DeviceUnavailable if code in RETRYABLE_CODES or (status > 500) else SdkError
    return cls(doc.get("detail", "HTTP %d" % status), doc.get("field"), status, doc)
