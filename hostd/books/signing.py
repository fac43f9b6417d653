"""Webhook signatures: Standard Webhooks 1.0, plus the seeds' single-header HMAC.

Standard Webhooks (standardwebhooks.com, spec "Signature scheme"): the signed content is
``webhook-id + "." + webhook-timestamp + "." + body``; the signature is
``"v1," + base64(HMAC-SHA256(key, signed content))`` in ``webhook-signature`` (space-separated
when several); ``webhook-timestamp`` is integer seconds; a secret written ``whsec_<base64>`` has
the base64-decoded bytes as key (any other secret: its UTF-8 bytes). A receiver refuses a
timestamp more than ``TOLERANCE`` seconds from its clock (replays).

The seeds (000 section 4, 001, 003) also name one header with the hex HMAC-SHA256 of the raw body
(``X-KutaPay-Signature``, ``X-Stalela-Signature``, ``X-BonoPay-Signature``): a subscription chooses
its name; it is computed with the same key.
"""

import base64
import binascii
import hashlib
import hmac
import time

from hostd.errors import VerificationFailed

TOLERANCE = 300


def key_of(secret):
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except binascii.Error:
            raise VerificationFailed("webhook secret whsec_... is not base64", "secret")
    return secret.encode("utf-8")


def signature(secret, msg_id, timestamp, body):
    content = b"%s.%d.%s" % (msg_id.encode("ascii"), timestamp, body)
    return "v1," + base64.b64encode(hmac.new(key_of(secret), content, hashlib.sha256).digest()).decode("ascii")


def body_signature(secret, body):
    """The seeds' header value: hex HMAC-SHA256 of the raw body."""
    return hmac.new(key_of(secret), body, hashlib.sha256).hexdigest()


def headers(secret, msg_id, timestamp, body, seed_header=None):
    out = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
           "webhook-signature": signature(secret, msg_id, timestamp, body)}
    if seed_header:
        out[seed_header] = body_signature(secret, body)
    return out


def verify(secret, headers, body, now=None, tolerance=TOLERANCE):
    """Check a delivery as a receiver must (headers: a case-insensitive mapping); raises
    VerificationFailed naming what is wrong, returns the webhook-id."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, sigs = lower.get("webhook-id"), lower.get("webhook-timestamp"), lower.get("webhook-signature")
    if not msg_id or not stamp or not sigs:
        raise VerificationFailed("missing webhook-id, webhook-timestamp or webhook-signature", "headers")
    if not stamp.isdigit():
        raise VerificationFailed("webhook-timestamp is not integer seconds", "webhook-timestamp")
    now = time.time() if now is None else now
    if abs(now - int(stamp)) > tolerance:
        raise VerificationFailed("webhook-timestamp is more than %d s away: a replay, or a clock off" % tolerance,
                                 "webhook-timestamp")
    expected = signature(secret, msg_id, int(stamp), body)
    if not any(hmac.compare_digest(expected, given) for given in sigs.split()):
        raise VerificationFailed("webhook-signature does not match the body", "webhook-signature")
    return msg_id
