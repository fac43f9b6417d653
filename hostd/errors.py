"""The host side's one error hierarchy.

``HostdError`` carries an API ``code`` (the seed's envelope codes such as
INVALID_CANONICAL_PAYLOAD or FISCALIZATION_FAILED), an optional ``field`` naming what was wrong and
a CLI ``exit_code``, so the CLI and (later) the HTTP layer translate errors in one place each.
"""


class HostdError(Exception):
    code = "INTERNAL_ERROR"
    exit_code = 1

    def __init__(self, detail, field=None):
        Exception.__init__(self, detail)
        self.detail = detail
        self.field = field


class InvalidPayload(HostdError):
    """The POS sent an invoice that fails validation before it reaches the device (HTTP 400)."""

    code = "INVALID_CANONICAL_PAYLOAD"
    exit_code = 2


class DeviceUnavailable(HostdError):
    """The device cannot be opened, vanished, or stopped answering (retry in a second)."""

    code = "DEVICE_UNAVAILABLE"
    exit_code = 3
    retry = 1


class DeviceTimeout(DeviceUnavailable):
    """No answer within the deadline; the request may or may not have executed (ask STATUS)."""

    code = "DEVICE_TIMEOUT"


class JournalFull(DeviceUnavailable):
    """The device journal has no room for the invoice now; the daemon archives and reclaims it
    (HTTP 503 with ``device_code`` JOURNAL_FULL: retry with the same Idempotency-Key)."""

    device_code = "JOURNAL_FULL"
    retry = 2


class DeviceBusy(HostdError):
    """The device has no room for another open PREPARE right now (HTTP 429, Retry-After)."""

    code = "RATE_LIMIT_EXCEEDED"
    exit_code = 3
    retry = 1


class ShareExhausted(DeviceBusy):
    """One terminal holds its whole share of the device's pending PREPAREs (HTTP 429): the others
    keep theirs (issue 8)."""

    def __init__(self, detail, field, retry):
        DeviceBusy.__init__(self, detail, field)
        self.retry = retry


class StoreUnavailable(HostdError):
    """The daemon's store cannot be written right now (disk full, I/O error): nothing was sealed
    that the POS will not get on retry (HTTP 503, Retry-After)."""

    code = "STORE_UNAVAILABLE"
    exit_code = 3
    retry = 1


class RequestTimeout(HostdError):
    """The client did not send its request body in time (HTTP 408)."""

    code = "REQUEST_TIMEOUT"
    exit_code = 3


class PayloadTooLarge(HostdError):
    """A request body over its endpoint's limit (HTTP 413)."""

    code = "PAYLOAD_TOO_LARGE"
    exit_code = 2


class InvalidRequest(HostdError):
    """A request the HTTP layer cannot take: a bad header, query parameter or HTTP framing (400)."""

    code = "INVALID_REQUEST"
    exit_code = 2


class KeyReused(HostdError):
    """An Idempotency-Key sent again with a different body (HTTP 422): the first body's answer
    stays the key's answer."""

    code = "IDEMPOTENCY_KEY_REUSED"
    exit_code = 2

    def __init__(self, detail="this Idempotency-Key was used with a different body"):
        HostdError.__init__(self, detail, "Idempotency-Key")


class DeviceRefused(HostdError):
    """The device answered with a typed error (HTTP 422 FISCALIZATION_FAILED for invoices)."""

    code = "FISCALIZATION_FAILED"
    exit_code = 5

    def __init__(self, status, name, detail):
        HostdError.__init__(self, "%s: %s" % (name, detail) if detail else name)
        self.status = status
        self.name = name
        self.device_code = name
        self.device_detail = detail


class ReportRefused(HostdError):
    """A closure or report the device (``device_code`` CLOSE_*) or the host refused: a period not
    begun or before the last closure, months not closed in order (HTTP 409 REPORT_REFUSED)."""

    code = "REPORT_REFUSED"
    exit_code = 5

    def __init__(self, detail, field="period", device_code=None):
        HostdError.__init__(self, detail, field)
        self.device_code = device_code


class VerificationFailed(HostdError):
    """A journal or export failed offline verification."""

    code = "VERIFICATION_FAILED"
    exit_code = 1   # issue 3: `fiscal verify` exits 1 naming the first bad record


UDEV_HINT = "install udev/70-fiscal.rules: see udev/README.md, or run `fiscal doctor`"


class DevicePermission(DeviceUnavailable):
    """The board is there but this user may not open its port: a udev or group problem, not a
    missing device, so the message carries the fix (a plain "cannot open" sends people looking
    for a cable fault; trezorlib and PlatformIO add the same udev hint)."""


class DiscoveryFailed(DeviceUnavailable):
    """Enumerating USB serial ports itself failed. Raised instead of returning an empty list, so
    "no board" always means that none is attached (python-fido2 #127)."""


class AlreadyServing(HostdError):
    """Another daemon holds this store or answers on this socket: starting a second one would
    steal its socket or file into its store behind its back (issue 13). Refused, exit 3."""

    code = "ALREADY_SERVING"
    exit_code = 3


class ConfigError(HostdError):
    """A daemon setting that cannot work (a tokens file that does not parse, a TCP listener
    without a token, a remote bind without TLS); ``field`` names the option (exit 2)."""

    code = "INVALID_CONFIG"
    exit_code = 2


class UploadRefused(HostdError):
    """The authority (hostd/authority/) refused an upload; nothing of it was stored. ``status`` is
    the HTTP status it answers, ``seq`` the record at fault (docs/SYNC.md "Errors")."""

    code = "SYNC_INVALID"
    status = 400
    exit_code = 2

    def __init__(self, detail, field=None, seq=None, expected_seq=None):
        HostdError.__init__(self, detail, field)
        self.seq = seq
        self.expected_seq = expected_seq
        self.rule = None   # the verifier's rule (VERIFY_SIGNATURE, ...) when a record failed it


class UploadUncertified(UploadRefused):
    """No certificate, or one no trusted authority key signed, or one for another device or key."""

    code = "SYNC_CERTIFICATE"
    status = 403


class UploadForged(UploadRefused):
    """A record fails the checks of ``fiscal verify`` (signature, chain, counters, time, schema),
    or an invoice's canonical bytes are not the ones its record signs."""

    code = "SYNC_FORGED"
    status = 422


class UploadConflict(UploadRefused):
    """A record the authority already holds, sent again with other bytes (duplicated-but-different)."""

    code = "SYNC_CONFLICT"
    status = 409


class UploadGap(UploadRefused):
    """Records that do not continue the chain the authority holds; ``expected_seq`` says where to resume."""

    code = "SYNC_GAP"
    status = 409


class CreditRefused(HostdError):
    """A credit note (a void, a refund, or a credit type sent to POST /api/v1/invoices) refused
    before anything was sealed or stored (issue 11). The daemon checks the device's own credit
    rules (device/credits.py) first, with the amounts the device proved in EVIDENCE, so each rule
    answers its own API code; ``device_code`` names the device rule (the same code whether the
    host or the device decided). HTTP 422 unless a subclass says otherwise."""

    code = "CREDIT_REFUSED"
    exit_code = 5
    device_code = None

    def __init__(self, detail, field=None):
        HostdError.__init__(self, detail, field)


class OriginalNotFound(CreditRefused):
    """The credit names a fiscal number this daemon never filed (HTTP 404)."""

    code = "ORIGINAL_NOT_FOUND"
    device_code = "CREDIT_ORIGINAL_UNKNOWN"


class OriginalIsCredit(CreditRefused):
    """The original named is itself a credit note: a void of a void."""

    code = "ORIGINAL_IS_CREDIT"
    device_code = "CREDIT_OF_CREDIT"


class OriginalSettled(CreditRefused):
    """Nothing of the original is left to credit: a second full void, a refund after it (HTTP 409)."""

    code = "ORIGINAL_SETTLED"
    device_code = "CREDIT_SETTLED"


class CreditExceedsBalance(CreditRefused):
    """A tax group would be credited beyond what remains of the original, counting every earlier
    credit against it: a refund above the remaining balance, a partial void of more than is left."""

    code = "CREDIT_EXCEEDS_BALANCE"
    device_code = "CREDIT_EXCEEDS"


class CreditCurrencyMismatch(CreditRefused):
    """The credit is in another currency than its original."""

    code = "CREDIT_CURRENCY_MISMATCH"
    device_code = "CREDIT_CURRENCY"


class CreditKindMismatch(CreditRefused):
    """``credit_note`` credits a sale or an advance, ``export_credit`` an export; nothing else."""

    code = "CREDIT_KIND_MISMATCH"
    device_code = "CREDIT_KIND"


class RefundUnreachable(CreditRefused):
    """No credit note has this total: the device computes each group's tax from its base, so some
    tax-inclusive amounts cannot be reached (at 16 %, bases 3 and 4 give 0.03 and 0.05, never 0.04);
    the detail names the nearest amounts that can."""

    code = "REFUND_AMOUNT_UNREACHABLE"


class OriginalContentMissing(CreditRefused):
    """The original was filed from the journal alone (a lost store), so its lines, client and
    merchant fields are unknown: retry the original's own request with its Idempotency-Key to
    complete it, or send the credit note yourself (HTTP 409)."""

    code = "ORIGINAL_CONTENT_MISSING"


class CreditBooksIncomplete(CreditRefused):
    """The daemon cannot prove to the device what was credited so far: its store lacks credit
    notes the device erased after archiving (a store rebuilt without its archive). Nothing is
    sealed until the store is restored (HTTP 409)."""

    code = "CREDIT_BOOKS_INCOMPLETE"
    device_code = "CREDIT_EVIDENCE_STALE"


# The device's credit refusals, by device code, as the API's typed errors (hostd/owner/credits.py).
CREDIT_REFUSALS = {cls.device_code: cls for cls in (OriginalNotFound, OriginalIsCredit, OriginalSettled,
                                                    CreditExceedsBalance, CreditCurrencyMismatch, CreditKindMismatch)}
