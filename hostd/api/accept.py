"""Accepting one invoice request: the one path every sealing endpoint takes (one-call, two-phase,
batch items, orders, ERP invoices).

The key: ``prefix`` + the POS's Idempotency-Key (1..255 printable ASCII; an empty or undecodable
header is refused rather than taken as a key), or the payload's own natural key (an order id, a
connector reference), or a fresh one for a one-off request. The body is read once, mapped when it
is another shape (hostd/intake/shapes.py), checked and canonicalised
(hostd/intake/canonical.py); the owner stores its request row, and checks that a retry carries the
same body (hostd/owner/sealing.py). What the row keeps as the invoice JSON is the canonical JSON document that was sealed:
the POS's own bytes for a canonical invoice (strict UTF-8, so decoding is lossless), the mapped
document for another shape, and the completed document (hostd/intake/strictjson.py ``dumps``)
for an invoice that left its ``timestamp`` out: that one is the time of acceptance, to the
second, taken once per request (per batch; hostd/intake/shapes.py ``accepted_at``). The body hash is
always over the bytes the client sent, so a retry of the same bytes under the same key replays
the stored answer, whose canonical invoice carries the first attempt's time.
"""

import hashlib
import json
import re
import time
import uuid
from decimal import Decimal

from hostd.api.auth import CALLER
from hostd.errors import InvalidRequest
from hostd.intake.canonical import parse_invoice
from hostd.intake.shapes import accepted_at
from hostd.store.store import COLUMNS
from protocol import record

MAX_KEY = 255
_KEY = re.compile(r"\A[\x21-\x7e][\x20-\x7e]*\Z")   # printable ASCII, not starting with a space


def check_key(given, field="Idempotency-Key"):
    if not given:
        raise InvalidRequest("%s must not be empty; omit it for a one-off request" % field, field)
    if len(given) > MAX_KEY or not _KEY.match(given):
        raise InvalidRequest("%s must be 1 to %d printable ASCII characters" % (field, MAX_KEY), field)
    return given


def idempotency_key(request, prefix, natural=None):
    """The request's store key (module docstring)."""
    given = request.headers.get("Idempotency-Key")
    if given is not None:
        return prefix + check_key(given)
    if natural is not None:
        return prefix + natural
    return prefix + "auto-" + uuid.uuid4().hex


def document_bytes(doc):
    """A mapped canonical JSON document as UTF-8 bytes (Decimals as their exact text)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"),
                      default=lambda v: str(v) if isinstance(v, Decimal) else _refuse(v)).encode("utf-8")


def _refuse(value):
    raise TypeError("not JSON: %r" % (value,))


def accept(api, request, key, raw, document=None, reference=None, now=None, sent=None):
    """Check one request and return it as a ``pending`` dict (the request row's columns), not
    stored yet: the owner stores it in the transaction that files its seal, or before the first
    device step when it cannot seal at once (hostd/owner/sealing.py); a credit type's also carries
    ``authorise(outlet_id)``, the 403 check for its original's outlet. ``document``: the canonical
    JSON bytes a mapper made of ``raw`` (None when ``raw`` is a canonical invoice itself); ``now``
    the timestamp of an invoice without one (default: ``accepted_at()``); ``sent`` what the
    invoice bytes read as, when the caller has it (hostd/intake/canonical.py ``parse``). The
    invoice's outlet must be one this daemon and the request's token may act for (403)."""
    sealed_text = document if document is not None else raw
    parsed = parse_invoice(sealed_text, api.merchant, now if now is not None else accepted_at(), sent)
    api.check_outlet(request, parsed.doc["outlet_id"])
    pending = pending_of(key, hashlib.sha256(raw).digest(), parsed, sealed_text, reference)
    pending["caller"] = request.get(CALLER)   # a scoped token's share of the PREPARE slots (owner/slots.py)
    if parsed.original is not None:   # a credit note: the token must also act for its original's outlet
        pending["authorise"] = lambda outlet_id: outlet_id is None or api.check_outlet(request, outlet_id)
    return pending


def pending_of(key, body_hash, parsed, sealed_text, reference=None):
    """The ``pending`` dict of a checked invoice (hostd.intake.canonical.Parsed) whose JSON is
    ``sealed_text`` (kept as sent, or as dated when it had no timestamp); ``body_hash`` is over
    what the client sent (for a void or refund: the request, not the credit note the daemon made
    of it)."""
    invoice_json = parsed.text() if parsed.stamped else sealed_text.decode("utf-8")
    pending = {"key": key, "body_hash": body_hash, "canonical": parsed.canonical,
               "invoice_json": invoice_json, "created": time.time(),
               "request_id": record.request_id_for(key), "state": "new"}
    for name in COLUMNS:
        pending[name] = parsed.columns.get(name)
    pending["reference"] = reference
    pending["original"] = parsed.original   # a credit type's original: sealed by its own branch (owner/credits.py)
    return pending
