"""``GET /api/v1/openapi.json``: the POS API described as OpenAPI 3.1, from one table.

``OPERATIONS`` below lists every route the application serves: method, path, summary, whether it
needs a bearer token, its request body, its success answer and the error codes it may answer.
The document is generated from it, and tests/test_openapi.py compares it with the application's
real router both ways, so neither can drift.

**Adding a route**: add it to its resource module's ``routes()`` (one module per resource), then
one ``op(...)`` line here with the schema names of its body and answer (``SCHEMAS`` below; add a
schema if it is new). The test names the missing line when one is forgotten. Error codes map to
HTTP statuses through hostd/books/envelope.py's ``HTTP_FOR``, the table the middleware answers
with, so a code and its status are written once.
"""

import re

from aiohttp import web

from hostd.api.replies import Resource, json_response
from hostd.books.envelope import HTTP_FOR

TITLE = "Open fiscal device: POS API"
VERSION = "1"

# Error codes each kind of operation may answer (README "Errors").
ANY = ("INVALID_REQUEST", "UNAUTHORIZED", "INTERNAL_ERROR")
READ = ANY + ("FORBIDDEN",)
DEVICE = READ + ("RATE_LIMIT_EXCEEDED", "DEVICE_UNAVAILABLE")
BODY = DEVICE + ("PAYLOAD_TOO_LARGE", "REQUEST_TIMEOUT", "INVALID_CANONICAL_PAYLOAD", "STORE_UNAVAILABLE")
SEAL = BODY + ("FISCALIZATION_FAILED", "IDEMPOTENCY_KEY_REUSED")
CREDIT = ("ORIGINAL_NOT_FOUND", "ORIGINAL_IS_CREDIT", "ORIGINAL_SETTLED", "CREDIT_EXCEEDS_BALANCE",
          "CREDIT_CURRENCY_MISMATCH", "CREDIT_KIND_MISMATCH", "ORIGINAL_CONTENT_MISSING", "CREDIT_BOOKS_INCOMPLETE")


def op(method, path, summary, ok, body=None, auth=True, errors=ANY, query=(), headers=(), content="application/json",
       status=200, body_content="application/json"):
    return {"method": method, "path": path, "summary": summary, "ok": ok, "body": body, "auth": auth,
            "errors": errors, "query": query, "headers": headers, "content": content, "status": status,
            "body_content": body_content}


LIST_QUERY = (("merchant_nif", "string"), ("outlet_id", "string"), ("client.nif", "string"),
              ("status", "string"), ("fiscal_number", "string"), ("date_range", "string"),
              ("page", "integer"), ("per_page", "integer"), ("sort", "string"))

OPERATIONS = (
    op("POST", "/api/v1/invoices", "Seal an invoice in one call (a retry with the same Idempotency-Key gets "
       "the byte-identical answer); a credit type names its original in `credit`", "Sealed", body="Invoice",
       errors=SEAL + CREDIT, headers=("Idempotency-Key",)),
    op("POST", "/api/v1/invoices/{fiscal_number}/void", "A credit note of the original: in full, or the lines "
       "and quantities of `adjustments`", "Sealed", body="VoidRequest", errors=SEAL + CREDIT,
       headers=("Idempotency-Key",)),
    op("POST", "/api/v1/invoices/{fiscal_number}/refund", "A credit note of a tax-inclusive amount, split pro rata "
       "of what remains of the original's tax groups (README 'Credit notes')", "Sealed", body="RefundRequest",
       errors=SEAL + CREDIT + ("REFUND_AMOUNT_UNREACHABLE",), headers=("Idempotency-Key",)),
    op("POST", "/api/v1/invoices/prepare", "Two-phase: validate on the device and hold a nonce", "Prepared",
       body="Invoice", errors=SEAL, headers=("Idempotency-Key",)),
    op("POST", "/api/v1/invoices/commit", "Two-phase: seal a prepared invoice by its nonce", "Sealed",
       body="Nonce", errors=SEAL),
    op("POST", "/api/v1/invoices/abort", "Two-phase: release a prepared nonce", "Aborted", body="Nonce",
       errors=SEAL),
    op("GET", "/api/v1/invoices", "Sealed invoices, filtered and paginated", "InvoiceList",
       errors=READ + ("INVALID_CANONICAL_PAYLOAD",), query=LIST_QUERY),
    op("GET", "/api/v1/invoices/{fiscal_number}", "One sealed invoice, by fiscal number or counter",
       "InvoiceFound", errors=READ + ("NOT_FOUND",)),
    op("GET", "/api/v1/tax-groups", "The tax-group manifest (codes, rates, effective dates)", "TaxGroups"),
    op("GET", "/api/v1/outlets/{outlet_id}/status", "Device state for an outlet ('local': the device itself)",
       "OutletStatus", errors=DEVICE),
    op("GET", "/api/v1/verify/{fiscal_number}", "Check one sealed invoice's signature and hash", "Verified",
       errors=READ + ("NOT_FOUND",)),
    op("GET", "/api/v1/audit/export", "The journal export, verifiable offline (fiscal verify); a range starts "
       "at its anchoring checkpoint and ends at the head signed over ?challenge", "Export",
       errors=DEVICE + ("STORE_UNAVAILABLE", "INVALID_CANONICAL_PAYLOAD"),
       query=(("challenge", "string"), ("from_seq", "integer"), ("from", "string"))),
    op("POST", "/api/v1/invoices/batch", "Up to 500 invoices; each answers what a single POST would have",
       "Batch", body="BatchRequest", errors=BODY),
    op("POST", "/api/v1/orders", "An e-commerce order (seed 000 section 5), sealed as a canonical invoice",
       "Sealed", body="Order", errors=SEAL, headers=("Idempotency-Key",)),
    op("POST", "/api/v1/erp/invoices", "An ERP invoice (seed 000 section 6); answers its connector_reference",
       "Sealed", body="ErpInvoice", errors=SEAL, headers=("Idempotency-Key",)),
    op("GET", "/api/v1/invoices/{fiscal_number}/receipt", "A printable receipt: HTML, text, or its QR (SVG, PNG)",
       "Receipt", errors=READ + ("NOT_FOUND", "INVALID_CANONICAL_PAYLOAD"),
       query=(("format", "string"), ("width", "integer"), ("columns", "integer"), ("scale", "integer"),
              ("token", "string")),
       content="text/html"),
    op("GET", "/api/v1/exports/invoices.csv", "Sealed invoices as CSV, one row per invoice and tax group", "Csv",
       errors=READ + ("INVALID_CANONICAL_PAYLOAD",), query=(("from", "string"), ("to", "string")),
       content="text/csv"),
    op("POST", "/api/v1/imports/invoices.csv", "Reconcile a CSV with the sealed invoices (seals nothing)",
       "CsvReconciled", body="Csv", errors=BODY, body_content="text/csv"),
    op("GET", "/api/v1/exports/accounting", "Accounting entries of a period (JSON, or NDJSON with a trailer)",
       "Accounting", errors=READ + ("INVALID_CANONICAL_PAYLOAD",),
       query=(("period", "string"), ("format", "string"), ("currency", "string"))),
    op("POST", "/api/v1/webhooks", "Subscribe a URL to events (Standard Webhooks signatures)", "Webhook",
       body="WebhookRequest", errors=BODY, status=201),
    op("GET", "/api/v1/webhooks", "Webhook subscriptions (secrets masked)", "Webhooks"),
    op("GET", "/api/v1/webhooks/{id}", "One webhook subscription", "Webhook", errors=READ + ("NOT_FOUND",)),
    op("DELETE", "/api/v1/webhooks/{id}", "Unsubscribe (pending deliveries end)", "WebhookDeleted",
       errors=READ + ("NOT_FOUND",)),
    op("GET", "/api/v1/webhooks/{id}/deliveries", "A subscription's delivery log with every attempt",
       "WebhookDeliveries", errors=READ + ("NOT_FOUND",)),
    op("GET", "/api/v1/sync", "Where the sync to the authority stands (404 when --sync-url is not set)",
       "SyncState", errors=READ + ("NOT_FOUND",)),
    op("POST", "/api/v1/sync/retry", "Start a sync stopped at a refused record again (a token for every outlet)",
       "SyncRestarted", body="Empty", errors=READ + ("NOT_FOUND",)),
    op("POST", "/api/v1/reports", "A report: Z, M or Y (a device-signed closure), X (the open period's figures, "
       "unsigned) or A (the audit export of a period); a retry with the same Idempotency-Key answers the same "
       "report", "Report", body="ReportRequest", errors=BODY + ("REPORT_REFUSED",), headers=("Idempotency-Key",),
       status=201),
    op("GET", "/api/v1/reports", "Reports, newest first", "Reports", errors=READ + ("INVALID_CANONICAL_PAYLOAD",),
       query=(("type", "string"), ("limit", "integer"))),
    op("GET", "/api/v1/reports/{report_id}", "One report with its summary", "ReportFound", errors=READ + ("NOT_FOUND",)),
    op("GET", "/api/v1/reports/{report_id}/download", "A report's bundle file (JSON), or its invoice CSV "
       "(?format=csv)", "Bundle", errors=READ + ("NOT_FOUND", "INVALID_CANONICAL_PAYLOAD"),
       query=(("format", "string"), ("token", "string"))),
    op("GET", "/api/v1/invoices/{fiscal_number}/proof", "The Merkle path from an invoice record to its Z "
       "closure's root (fiscal verify --receipt --proof --closure)", "Proof", errors=READ + ("NOT_FOUND",)),
    op("GET", "/api/v1/events", "The technical log: power-ups, clock changes, faults, fill warnings, checkpoints, "
       "archives, closures, provisioning (device-signed records)", "TechnicalEvents",
       errors=DEVICE + ("INVALID_CANONICAL_PAYLOAD",),
       query=(("from", "string"), ("to", "string"), ("limit", "integer"))),
    op("GET", "/", "The status page (HTML, read-only; ?token= for a bookmark)", "Page", errors=DEVICE,
       query=(("token", "string"),), content="text/html"),
    op("GET", "/health", "Device reachable, journal fill, store writable (503 when not fit to seal)", "Health",
       auth=False, errors=("INTERNAL_ERROR",)),
    op("GET", "/api/v1/openapi.json", "This document", "OpenApi", auth=False, errors=("INTERNAL_ERROR",)),
    op("GET", "/sdk/fiscal.mjs", "The browser SDK: one ES module for web POS (public code, no token; the page's "
       "origin needs --cors-origin)", "Script", auth=False, errors=("FORBIDDEN", "INTERNAL_ERROR"),
       content="text/javascript"),
)

_STR, _INT, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_MONEY = {"oneOf": [{"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}, {"type": "number"}],
          "description": "exact (in the currency's minor unit, rates in ppm): a decimal string or a JSON number"}


def _obj(props, required=None, **more):
    doc = {"type": "object", "properties": props}
    doc["required"] = list(props) if required is None else list(required)
    doc.update(more)
    return doc


def _ok(code, payload):
    return _obj({"status": {"const": "ok"}, "code": {"const": code}, "payload": payload})


SCHEMAS = {
    "Invoice": _obj({
        "merchant_nif": _STR, "outlet_id": _STR, "pos_terminal_id": _STR, "cashier_id": _STR,
        "invoice_type": {"enum": ["sale", "advance", "credit_note", "export", "export_credit"]},
        "timestamp": {"type": "string", "format": "date-time",
                      "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
                      "description": "when the invoice was authored, UTC to the second (YYYY-MM-DDTHH:MM:SSZ); optional: "
                      "left out, it is the time the daemon accepts the invoice, filled in before canonicalisation so "
                      "the canonical invoice and its hash carry it. A timestamp that is sent is sealed as sent, and "
                      "the device refuses one outside its tax profile's window around its clock (-48 h / +5 min for "
                      "the shipped profiles: 422 FISCALIZATION_FAILED, device_code INVOICE_TIME_WINDOW). The seal's "
                      "own time stamp is the device's (SealedPayload.timestamp)"},
        "client": _obj({"name": _STR, "nif": _STR, "classification": {"enum": [
            "Individual", "Company", "CommercialIndividual", "Professional", "Embassy"]}}),
        "items": {"type": "array", "maxItems": 500, "items": _obj(
            {"code": _STR, "description": _STR, "quantity": _MONEY, "unit_price": _MONEY, "tax_group": _STR,
             "taxable_unit": _STR})},
        "tax_groups": {"type": "array", "maxItems": 500, "items": _obj(
            {"code": _STR, "name": _STR, "rate": _MONEY, "base_amount": _MONEY, "tax_amount": _MONEY})},
        "totals": _obj({"subtotal": _MONEY, "total_vat": _MONEY, "total": _MONEY, "currency": {"enum": ["CDF", "USD"]}},
                       required=["total", "currency"]),
        "payments": {"type": "array", "maxItems": 500, "items": _obj(
            {"method": _STR, "amount": _MONEY, "instrument_id": _STR, "currency": _STR},
            required=["method", "amount"])},
        "credit": _obj({"original_fiscal_number": _STR, "reason": _STR}),
    }, required=["merchant_nif", "outlet_id", "pos_terminal_id", "cashier_id", "invoice_type", "client", "items",
                 "tax_groups", "totals", "payments"],
        description="The canonical invoice: these 11 fields in this order, the timestamp optional, and `credit` "
                    "last on the credit types (README 'Invoices')"),
    "VoidRequest": _obj({"reason": _STR, "adjustments": {"type": "array", "maxItems": 500, "items": _obj(
        {"code": _STR, "line": _INT, "quantity": _MONEY}, required=["quantity"])}}, required=["reason"]),
    "RefundRequest": _obj({"amount": _MONEY, "currency": {"enum": ["CDF", "USD"]}, "payment_reference": _STR,
                           "reason": _STR}, required=["amount", "currency", "payment_reference"]),
    "Nonce": _obj({"nonce": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}}),
    "SealedPayload": _obj({"fiscal_number": _STR, "auth_code": _STR, "timestamp": _STR, "qr_payload": _STR,
                           "fiscal_authority_id": _STR, "dgi_status": _STR, "ledger_hash": _STR, "counter": _INT,
                           "signed_record": _STR, "signature": _STR, "security_elements": {"type": "object"}}),
    "Sealed": _ok("INVOICE_FISCALIZED", {"$ref": "#/components/schemas/SealedPayload"}),
    "Prepared": _ok("INVOICE_PREPARED", _obj({"nonce": _STR, "state": _STR, "expires": _INT,
                                              "summary": {"type": "object"}})),
    "Aborted": _ok("INVOICE_ABORTED", _obj({"state": _STR})),
    "InvoiceFound": _ok("INVOICE_FOUND", {"type": "object", "description": "the sealed payload and the invoice; an "
                                                                      "original also lists its `credits` and its "
                                                                      "remaining `balance`"}),
    "InvoiceList": _obj({"status": {"const": "ok"}, "code": {"const": "INVOICES"}, "page": _INT, "per_page": _INT,
                         "payload": {"type": "array", "items": {"type": "object"}}}),
    "TaxGroups": _ok("TAX_GROUPS", {"type": "array", "items": _obj(
        {"code": _STR, "name": _STR, "rate": _STR, "rate_ppm": _INT, "effective_from": _STR})}),
    "OutletStatus": _ok("OUTLET_STATUS", _obj({"device_state": {"enum": ["ready", "faulty", "unavailable"]},
                                               "outlet_id": _STR, "quarantined": {"type": "object"}},
                                              additionalProperties=True)),
    "Verified": _obj({"status": {"const": "ok"}, "code": {"enum": ["VERIFIED", "NOT_VERIFIED"]},
                      "payload": _obj({"fiscal_number": _STR, "valid": _BOOL, "checks": {"type": "object"},
                                       "public_key": _STR})}),
    "Export": {"type": "object", "description": "journal export (hostd/books/export.py); `fiscal verify` checks it"},
    "Health": _obj({"status": {"enum": ["ok", "degraded"]}, "code": {"const": "HEALTH"}, "payload": _obj(
        {"device": {"type": "object"}, "journal": {"type": ["object", "null"]}, "store": {"type": "object"}})}),
    "OpenApi": {"type": "object", "description": "an OpenAPI 3.1 document"},
    "BatchRequest": _obj({"invoices": {"type": "array", "minItems": 1, "maxItems": 500, "items": _obj(
        {"idempotency_key": _STR, "invoice": {"$ref": "#/components/schemas/Invoice"}})}}),
    "Batch": _ok("BATCH_PROCESSED", _obj({"results": {"type": "array", "items": _obj(
        {"index": _INT, "http_status": _INT, "response": {"type": "object"}})}})),
    "Order": _obj({"order_id": _STR, "customer": _STR, "created_at": {
                       "type": "string", "format": "date-time",
                       "description": "the invoice timestamp (optional: else the time the daemon accepts the order)"},
                   "line_items": {"type": "array", "items": _obj({"sku": _STR, "description": _STR, "quantity": _MONEY,
                                                                  "unit_price": _MONEY, "tax_group": _STR})},
                   "shipping": _obj({"method": _STR, "amount": _MONEY}, required=["amount"]),
                   "payments": {"type": "array", "items": _obj({"method": _STR, "amount": _MONEY})}},
                  required=["order_id", "line_items", "payments"], description="seed 000 section 5; prices include tax"),
    "ErpInvoice": _obj({"connector_reference": _STR, "invoice_lines": {"type": "array", "items": _obj(
        {"product_code": _STR, "description": _STR, "quantity": _MONEY, "unit_price": _MONEY, "tax_group": _STR})},
        "client": {"type": "object"}, "totals": {"type": "object"}, "fiscal_metadata": {"type": "object"},
        "payments": {"type": "array"}, "timestamp": {
            "type": "string", "format": "date-time",
            "description": "the invoice timestamp (optional: else the time the daemon accepts the invoice)"}},
        required=["connector_reference", "invoice_lines"],
        description="seed 000 section 6; net prices"),
    "Receipt": {"type": "string", "description": "text/html, text/plain, image/svg+xml or image/png by format="},
    "Csv": {"type": "string", "description": "RFC 4180 CSV: invoice_number, issue_date, client_name, tax_group, "
                                             "subtotal, total_vat, total, status"},
    "CsvReconciled": _ok("CSV_RECONCILED", _obj({"matched": _INT, "mismatched": _INT, "unknown": _INT,
                                                 "rows": {"type": "array", "items": {"type": "object"}}})),
    "Accounting": _ok("ACCOUNTING_EXPORT", _obj({"period": _STR, "currency": _STR, "entries": {
        "type": "array", "items": _obj({"account_code": _STR, "invoice_ref": _STR, "amount": _STR,
                                        "tax_group": _STR, "fiscal_number": _STR})}})),
    "WebhookRequest": _obj({"url": _STR, "events": {"type": "array", "items": _STR}, "secret": _STR,
                            "active": _BOOL, "signature_header": _STR, "max_attempts": _INT},
                           required=["url", "events", "secret"]),
    "WebhookView": _obj({"id": _STR, "url": _STR, "events": {"type": "array"}, "secret": _STR, "active": _BOOL,
                         "signature_header": _STR, "max_attempts": _INT, "disabled_reason": _STR}),
    "Webhook": _ok("WEBHOOK", {"$ref": "#/components/schemas/WebhookView"}),
    "Webhooks": _ok("WEBHOOKS", {"type": "array", "items": {"$ref": "#/components/schemas/WebhookView"}}),
    "WebhookDeleted": _ok("WEBHOOK_DELETED", _obj({"id": _STR})),
    "WebhookDeliveries": _ok("WEBHOOK_DELIVERIES", {"type": "array", "items": {"type": "object"}}),
    "Page": {"type": "string", "description": "an HTML page"},
    "ReportRequest": _obj({"type": {"enum": ["X", "Z", "M", "Y", "A"]}, "outlet_id": _STR,
                           "period": {"type": "string", "description": "Z: YYYY-MM-DD (default today, device "
                                      "clock, UTC); M: YYYY-MM; Y: YYYY; A: any of these; X: none"}},
                          required=["type"]),
    "ReportView": _obj({"report_id": _STR, "type": _STR, "period": {"type": ["string", "null"]},
                        "outlet_id": {"type": ["string", "null"]}, "created": _STR, "ledger_hash": _STR,
                        "closure_seq": {"type": ["integer", "null"]}, "bundle_sha256": _STR, "download_url": _STR,
                        "summary": {"type": "object"}}),
    "Report": _ok("REPORT_GENERATED", {"$ref": "#/components/schemas/ReportView"}),
    "ReportFound": _ok("REPORT", {"$ref": "#/components/schemas/ReportView"}),
    "Reports": _ok("REPORTS", {"type": "array", "items": {"$ref": "#/components/schemas/ReportView"}}),
    "Bundle": {"type": "object", "description": "the closure bundle (hostd/books/closures.py) or the export"},
    "Proof": _ok("INCLUSION_PROOF", _obj({"format": _STR, "fiscal_number": _STR, "seq": _INT, "record": _STR,
                                          "prev": _STR, "leaf_index": _INT, "tree_size": _INT,
                                          "path": {"type": "array", "items": _STR}, "closure": {"type": "object"}})),
    "TechnicalEvents": _ok("TECHNICAL_EVENTS", {"type": "array", "items": _obj(
        {"seq": _INT, "type": _STR, "event": {"type": ["string", "null"]}, "time": _STR, "detail": {"type": "object"}})}),
    "Empty": {"type": "object", "maxProperties": 0, "description": "no body, or {}"},
    "SyncState": _ok("SYNC_STATE", {"$ref": "#/components/schemas/SyncSummary"}),
    "SyncRestarted": _ok("SYNC_RESTARTED", {"$ref": "#/components/schemas/SyncSummary"}),
    "SyncSummary": _obj({"authority": _STR, "acknowledged_seq": _INT, "pending_records": _INT, "queued_invoices": _INT,
                         "failed_invoices": _INT, "stopped_at_seq": {"type": ["integer", "null"]}, "failures": _INT,
                         "last_error": {"type": ["string", "null"]}, "last_success": {"type": ["string", "null"]},
                         "last_attempt": {"type": ["string", "null"]}}, required=["authority", "acknowledged_seq"],
                        additionalProperties=True),
    "Script": {"type": "string", "description": "a JavaScript module (hostd/sdk/browser/fiscal.mjs)"},
    "Error": _obj({"status": {"const": "error"}, "code": {"enum": sorted(HTTP_FOR)}, "detail": _STR,
                   "field": _STR, "retry_after": _INT, "device_code": _STR}, required=["status", "code", "detail"]),
}

_PARAM = re.compile(r"\{([^}]+)\}")


def _ref(name):
    if name not in SCHEMAS:
        raise KeyError("hostd/api/openapi.py: no schema %r in SCHEMAS" % name)
    return {"$ref": "#/components/schemas/%s" % name}


def operation_doc(entry):
    doc = {"summary": entry["summary"], "operationId": "%s %s" % (entry["method"], entry["path"])}
    params = [{"name": n, "in": "path", "required": True, "schema": _STR} for n in _PARAM.findall(entry["path"])]
    params += [{"name": n, "in": "query", "required": False, "schema": {"type": t}} for n, t in entry["query"]]
    params += [{"name": n, "in": "header", "required": False, "schema": _STR} for n in entry["headers"]]
    if params:
        doc["parameters"] = params
    if entry["body"]:
        doc["requestBody"] = {"required": True, "content": {entry["body_content"]: {"schema": _ref(entry["body"])}}}
    doc["security"] = [{"bearer": []}] if entry["auth"] else []
    responses = {str(entry["status"]): {"description": "success",
                                        "content": {entry["content"]: {"schema": _ref(entry["ok"])}}}}
    by_status = {}
    for code in entry["errors"]:
        by_status.setdefault(HTTP_FOR[code], []).append(code)
    if entry["ok"] == "Health":
        by_status.setdefault(503, []).append("degraded: see payload")
    for status in sorted(by_status):
        responses[str(status)] = {"description": ", ".join(by_status[status]),
                                  "content": {"application/json": {"schema": _ref(
                                      "Health" if status == 503 and entry["ok"] == "Health" else "Error")}}}
    doc["responses"] = responses
    return doc


def spec():
    paths = {}
    for entry in OPERATIONS:
        paths.setdefault(entry["path"], {})[entry["method"].lower()] = operation_doc(entry)
    return {"openapi": "3.1.0", "info": {"title": TITLE, "version": VERSION},
            "paths": paths,
            "components": {"schemas": SCHEMAS,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}


class OpenApi(Resource):
    def routes(self):
        return [web.get("/api/v1/openapi.json", self.document)]

    async def document(self, request):
        return json_response(200, spec())
