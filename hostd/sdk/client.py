"""The Python SDK (issue 14; seed 003 "SDK Methods"): what a POS calls instead of hand-writing
HTTP. ``Client(socket=PATH)`` talks to the daemon's unix socket, ``Client(base_url=URL)`` to its
localhost TCP listener; ``token`` is sent as ``Authorization: Bearer``.

- ``client.invoices.create(doc_or_builder, idempotency_key=None)`` seals and returns the sealed
  payload; with an offline queue, a daemon or device that cannot be reached queues the invoice
  and returns a ``Queued`` handle instead (never a number it did not get from the device);
  ``get``, ``list``; ``void`` and ``refund`` (credit notes of a sealed original) are never queued:
  they need the device now, to prove what remains of the original, and a queued refund could find
  the balance gone by the time it is sent; they raise DeviceUnavailable instead, and a retry with
  the same ``idempotency_key`` is safe (the daemon answers a sealed credit's bytes again);
- ``client.queue.flush()`` sends queued drafts oldest first (retry 100 ms -> 5 s -> 20 s, at most
  3 attempts a draft, honouring Retry-After), calling ``on_queued``/``on_fiscalized``/``on_error``;
- ``client.reports.generate(type, outlet_id, period)``;
- ``client.tax_groups.list()``, cached until the next ``effective_from`` falls due (or a day);
- ``client.webhooks.verify(body, headers, secret)``: the event, or InvalidSignature.

Errors are the typed classes of hostd/sdk/errors.py.
"""

import json
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from hostd.books import signing
from hostd.errors import HostdError, VerificationFailed
from hostd.sdk import errors
from hostd.sdk.builders import InvoiceBuilder
from hostd.sdk.queue import OfflineQueue
from hostd.sdk.transport import request
from protocol import timefmt

RETRY_DELAYS = (0.1, 5.0, 20.0)
CACHE_SECONDS = 24 * 3600


class Queued:
    """What ``create`` answers for an invoice it had to queue: no fiscal number (the device has
    not sealed it yet), its draft id and Idempotency-Key."""

    status = "queued"

    def __init__(self, draft: Dict[str, Any]) -> None:
        self.id = draft["id"]
        self.idempotency_key = draft["idempotency_key"]

    def __repr__(self) -> str:
        return "Queued(%s, key=%s)" % (self.id, self.idempotency_key)


class Client:
    def __init__(self, socket: Optional[str] = None, base_url: Optional[str] = None, token: Optional[str] = None,
                 timeout: float = 10.0, queue: Optional[OfflineQueue] = None,
                 on_queued: Optional[Callable[..., Any]] = None, on_fiscalized: Optional[Callable[..., Any]] = None,
                 on_error: Optional[Callable[..., Any]] = None, retry_delays: Sequence[float] = RETRY_DELAYS,
                 sleep: Callable[[float], Any] = time.sleep) -> None:
        if (socket is None) == (base_url is None):
            raise ValueError("give exactly one of socket= or base_url=")
        self.target = socket if socket is not None else base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.hooks = {"queued": on_queued, "fiscalized": on_fiscalized, "error": on_error}
        self.retry_delays = tuple(retry_delays)
        self.sleep = sleep
        self.invoices = Invoices(self)
        self.reports = Reports(self)
        self.tax_groups = TaxGroups(self)
        self.webhooks = Webhooks()
        self.queue = Flusher(self, queue) if queue is not None else None

    def _hook(self, name: str, *args: Any) -> None:
        if self.hooks[name] is not None:
            self.hooks[name](*args)

    def call(self, method: str, path: str, doc: Any = None, body: Optional[bytes] = None,
             key: Optional[str] = None) -> Dict[str, Any]:
        """One API call; the envelope's payload, or the typed error of its code."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        if key is not None:
            headers["Idempotency-Key"] = key
        if doc is not None:
            body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        try:
            status, got, data = request(self.target, method, path, body, headers, self.timeout)
        except HostdError as exc:
            raise errors.DeviceUnavailable(exc.detail)
        try:
            answer = json.loads(data)
        except ValueError:
            raise errors.SdkError("the daemon answered HTTP %d without JSON" % status, status=status)
        if status >= 400:
            wait = {k.lower(): v for k, v in got.items()}.get("retry-after", "")
            if isinstance(answer, dict) and answer.get("retry_after") is None and wait.isdigit():
                answer["retry_after"] = int(wait)   # RFC 9110 10.2.3, when the envelope leaves it out
            raise errors.from_envelope(status, answer)
        return answer


class Invoices:
    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, invoice: Any, idempotency_key: Optional[str] = None) -> Any:
        doc = invoice.build() if isinstance(invoice, InvoiceBuilder) else invoice
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        flusher = self.client.queue
        if flusher is None:
            return self.client.call("POST", "/api/v1/invoices", body=body, key=idempotency_key)["payload"]
        draft = flusher.queue.add(body, idempotency_key)   # stored first: a crash now loses nothing
        return flusher.send(draft, attempts=1) or Queued(draft)

    def get(self, fiscal_number: str) -> Dict[str, Any]:
        return self.client.call("GET", "/api/v1/invoices/%s" % fiscal_number)["payload"]

    def list(self, **filters: Any) -> List[Dict[str, Any]]:
        from urllib.parse import urlencode
        query = urlencode({k.replace("client_nif", "client.nif"): v for k, v in filters.items()})
        return self.client.call("GET", "/api/v1/invoices" + ("?" + query if query else ""))["payload"]

    def void(self, fiscal_number: str, reason: str, adjustments: Optional[List[Dict[str, Any]]] = None,
             idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """A credit note of ``fiscal_number``: in full, or the lines of ``adjustments``
        (``[{"code": ..., "quantity": ...}]``, ``line`` when a code appears twice); its sealed
        payload. Refusals are CreditRefused subclasses (OriginalSettled for a second full void)."""
        doc: Dict[str, Any] = {"reason": reason}
        if adjustments:
            doc["adjustments"] = adjustments
        return self.client.call("POST", "/api/v1/invoices/%s/void" % fiscal_number, doc, key=idempotency_key)["payload"]

    def refund(self, fiscal_number: str, amount: Any, currency: str, payment_reference: str = "", reason: str = "",
               idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """A credit note of the tax-inclusive ``amount`` (a decimal string, int or Decimal; never a
        float), split pro rata of what remains of the original's tax groups (README "Credit
        notes"); its sealed payload."""
        if isinstance(amount, float):
            raise ValueError("amount must be exact: a decimal string, an int or a Decimal, not a float")
        doc = {"amount": str(amount), "currency": currency, "payment_reference": payment_reference, "reason": reason}
        return self.client.call("POST", "/api/v1/invoices/%s/refund" % fiscal_number, doc,
                                key=idempotency_key)["payload"]


class Flusher:
    """Sends queued drafts (hostd/sdk/queue.py) in order, with the retry policy."""

    def __init__(self, client: Client, queue: OfflineQueue) -> None:
        self.client = client
        self.queue = queue

    def send(self, draft: Dict[str, Any], attempts: int) -> Optional[Dict[str, Any]]:
        """Try ``draft`` up to ``attempts`` times; the sealed payload, or None if it stays queued."""
        storage = self.queue.storage
        for attempt in range(attempts):
            try:
                answer = self.client.call("POST", "/api/v1/invoices", body=draft["body"], key=draft["idempotency_key"])
            except (errors.DeviceUnavailable, errors.RateLimited) as exc:
                storage.mark(draft["id"], "queued", attempts=draft.get("attempts", 0) + attempt + 1, error=exc.detail)
                if attempt + 1 < attempts:
                    delays = self.client.retry_delays
                    self.client.sleep(max(delays[min(attempt, len(delays) - 1)], exc.retry_after or 0))
                continue
            except errors.SdkError as exc:
                storage.mark(draft["id"], "error", error=json.dumps(exc.envelope or {"detail": exc.detail}))
                self.client._hook("error", draft, exc)
                raise
            storage.mark(draft["id"], "fiscalized", response=json.dumps(answer["payload"]))
            self.client._hook("fiscalized", draft, answer["payload"])
            return answer["payload"]
        self.client._hook("queued", draft)
        return None

    def flush(self) -> Dict[str, int]:
        """Send every queued draft, oldest first; stop at the first that must wait (order kept)."""
        done = {"fiscalized": 0, "error": 0, "queued": 0}
        pending = self.queue.pending()
        for i, draft in enumerate(pending):
            try:
                # the first try, then one retry after each delay (seed 003: 100 ms -> 5 s -> 20 s)
                sealed = self.send(draft, attempts=len(self.client.retry_delays) + 1)
            except errors.SdkError:
                done["error"] += 1
                continue
            if sealed is None:
                done["queued"] = len(pending) - i
                break
            done["fiscalized"] += 1
        return done


class Reports:
    def __init__(self, client: Client) -> None:
        self.client = client

    def generate(self, type: str, outlet_id: Optional[str] = None, period: Optional[str] = None,
                 idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """X, Z, M, Y or A (README "Reports and closures"); a retry with the same key answers the
        report made the first time. Reports need the device: they are never queued offline."""
        doc: Dict[str, Any] = {"type": type}
        if outlet_id is not None:
            doc["outlet_id"] = outlet_id
        if period is not None:
            doc["period"] = period
        return self.client.call("POST", "/api/v1/reports", doc, key=idempotency_key)["payload"]

    def get(self, report_id: str) -> Dict[str, Any]:
        return self.client.call("GET", "/api/v1/reports/%s" % report_id)["payload"]

    def list(self, type: Optional[str] = None, limit: int = 100) -> List[Dict[str, Any]]:
        query = "?limit=%d" % limit + ("&type=%s" % type if type else "")
        return self.client.call("GET", "/api/v1/reports" + query)["payload"]


class TaxGroups:
    """The manifest, cached: refreshed when a future ``effective_from`` falls due, or after a day."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.cached: Optional[List[Dict[str, Any]]] = None
        self.until = 0.0

    def list(self) -> List[Dict[str, Any]]:
        now = time.time()
        if self.cached is None or now >= self.until:
            self.cached = self.client.call("GET", "/api/v1/tax-groups")["payload"]
            future = [timefmt.parse_time(g["effective_from"]) for g in self.cached
                      if timefmt.parse_time(g["effective_from"]) > now]
            self.until = min([now + CACHE_SECONDS] + future)
        return self.cached


class Webhooks:
    def verify(self, body: bytes, headers: Dict[str, str], secret: str) -> Dict[str, Any]:
        """The delivered event, once its Standard Webhooks signature verifies (else InvalidSignature)."""
        try:
            signing.verify(secret, headers, body)
        except VerificationFailed as exc:
            raise errors.InvalidSignature(exc.detail, exc.field)
        return json.loads(body)
