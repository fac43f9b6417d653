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
    """The device cannot be opened, vanished, or stopped answering."""

    code = "DEVICE_UNAVAILABLE"
    exit_code = 3


class DeviceTimeout(DeviceUnavailable):
    """No answer within the deadline; the request may or may not have executed (ask STATUS)."""

    code = "DEVICE_TIMEOUT"


class DeviceBusy(HostdError):
    """The device has no room for another open PREPARE right now (HTTP 429, Retry-After)."""

    code = "RATE_LIMIT_EXCEEDED"
    exit_code = 3
    retry = 1


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


class VerificationFailed(HostdError):
    """A journal or export failed offline verification."""

    code = "VERIFICATION_FAILED"
    exit_code = 1   # issue 3: `fiscal verify` exits 1 naming the first bad record
