"""Webhook event payloads (issue 12): what each event tells a receiver.

``invoice.sealed`` (subscribable also as seed 000's ``invoice.fiscalized``) follows seed 000
section 4 and seed 002's notification fields: ``event, timestamp`` (the device's seal time),
``merchant_nif, outlet_id, fiscal_number, auth_code, total`` (currency units, exact decimal
text) ``total_minor`` (minor units), ``currency, invoice_type, tax_breakdown`` (``[{tax_group,
base_amount, tax_amount}]``), ``dgi_status, ledger_hash, invoice_hash`` (the canonical payload's
hash), ``security_elements {auth_code, timestamp, qr_payload}`` and ``metadata {pos_terminal_id,
cashier_id, reference}``. Every value comes from the sealed result, the signed record and the
stored invoice: nothing is invented.
"""

import json

from protocol import record, taxgroups
from hostd.intake import fastcbor
from hostd.intake.amounts import money_text

INVOICE_SEALED = "invoice.sealed"
SYNC_SUCCESS = "invoice.sync.success"
SYNC_FAILED = "invoice.sync.failed"
REPORT_GENERATED = "report.generated"
OFFLINE_ALERT = "outlet.offline_alert"
DEVICE_LOST = "device.lost"
DEVICE_FOUND = "device.found"
DEVICE_FAULT = "device.fault"
JOURNAL_FILL = "device.journal_fill"
NAMES = (INVOICE_SEALED, "invoice.fiscalized", SYNC_SUCCESS, SYNC_FAILED, REPORT_GENERATED, OFFLINE_ALERT,
         DEVICE_LOST, DEVICE_FOUND, DEVICE_FAULT, JOURNAL_FILL)


def invoice_sealed(sealed, doc):
    """The payload of ``invoice.sealed`` from the device's sealed result and the filing doc
    (hostd/owner/reconcile.py: counter, columns, canonical bytes)."""
    digits = taxgroups.CURRENCIES.get(doc["currency"], 2)
    canonical = fastcbor.decode(doc["canonical"]) if doc.get("canonical") else None
    breakdown = [{"tax_group": line[1], "base_amount": money_text(line[4], digits),
                  "tax_amount": money_text(line[5], digits)} for line in canonical[9]] if canonical else []
    return {"event": INVOICE_SEALED, "timestamp": sealed[record.S_TIMESTAMP],
            "merchant_nif": doc.get("merchant_nif"), "outlet_id": doc.get("outlet_id"),
            "fiscal_number": sealed[record.S_FISCAL_NUMBER], "auth_code": sealed[record.S_AUTH_CODE],
            "total": money_text(doc["total"], digits), "total_minor": doc["total"], "currency": doc["currency"],
            "invoice_type": doc.get("invoice_type"), "tax_breakdown": breakdown, "dgi_status": "queued",
            "ledger_hash": sealed[record.S_LEDGER_HASH].hex(), "invoice_hash": doc["invoice_hash"].hex(),
            "security_elements": {"auth_code": sealed[record.S_AUTH_CODE], "timestamp": sealed[record.S_TIMESTAMP],
                                  "qr_payload": sealed[record.S_QR]},
            "metadata": {"pos_terminal_id": canonical[3] if canonical else None,
                         "cashier_id": canonical[4] if canonical else None, "reference": doc.get("reference")}}


def device_event(kind, device_id, **detail):
    payload = {"event": kind, "device_id": device_id}
    payload.update(detail)
    return payload


def invoice_synced(row, acknowledged_at):
    """``invoice.sync.success``: the authority acknowledged this filed invoice's record."""
    sealed = _sealed_of(row)
    return {"event": SYNC_SUCCESS, "fiscal_number": row["fiscal_number"], "dgi_status": "synced",
            "acknowledged_at": acknowledged_at, "ledger_hash": sealed.get("ledger_hash"),
            "merchant_nif": row["merchant_nif"], "outlet_id": row["outlet_id"]}


def invoice_sync_failed(row, error, attempts):
    """``invoice.sync.failed``: the authority refused this invoice's record ``attempts`` times."""
    sealed = _sealed_of(row)
    return {"event": SYNC_FAILED, "fiscal_number": row["fiscal_number"], "dgi_status": "failed",
            "error": error, "attempts": attempts, "ledger_hash": sealed.get("ledger_hash"),
            "merchant_nif": row["merchant_nif"], "outlet_id": row["outlet_id"]}


def _sealed_of(row):
    return json.loads(row["sealed_json"]).get("payload", {})


def report_generated(report, summary):
    """``report.generated`` (seed 002): a report (X, Z, M, Y or A) was made; ``report`` is its
    store row as a dict, ``summary`` the closure summary (hostd/books/closures.py) or None."""
    out = {"event": REPORT_GENERATED, "report_id": report["report_id"], "type": report["type"],
           "period": report["period"], "outlet_id": report["outlet_id"], "ledger_hash": report["ledger_hash"],
           "bundle_sha256": report["sha256"], "download_url": "/api/v1/reports/%s/download" % report["report_id"]}
    if summary is not None:
        out["first_fiscal_number"] = summary.get("first_fiscal_number")
        out["last_fiscal_number"] = summary.get("last_fiscal_number")
        out["totals"] = [{"currency": c["currency"], "revenue_incl_tax": c["revenue_incl_tax"],
                          "revenue_excl_tax": c["revenue_excl_tax"], "perpetual_total": c["perpetual_total"]}
                         for c in summary.get("currencies", ())]
    return out
