"""Reading invoices back: the searchable columns of an invoice, and the GET answer (seed 002)."""

import json


def summary_columns(invoice_json):
    """Searchable columns from the invoice JSON the POS sent."""
    doc = json.loads(invoice_json)
    client = doc.get("client") if isinstance(doc.get("client"), dict) else {}
    return {"merchant_nif": doc.get("merchant_nif"), "outlet_id": doc.get("outlet_id"),
            "client_nif": client.get("nif"), "invoice_type": doc.get("invoice_type"), "timestamp": doc.get("timestamp")}


def invoice_view(row):
    """The GET answer: the sealed payload plus the invoice as the POS sent it."""
    sealed = json.loads(row["sealed_json"])["payload"]
    sealed["dgi_status"] = row["dgi_status"]
    sealed["acknowledged_at"] = row["acknowledged_at"]   # when the authority acknowledged it (sync)
    sealed["outlet_id"] = row["outlet_id"]
    if row["reference"] is not None:
        sealed["reference"] = row["reference"]
    sealed["invoice"] = json.loads(row["invoice_json"]) if row["invoice_json"] else None
    sealed["canonical"] = row["canonical"].hex() if row["canonical"] else None
    return sealed


def quarantined_view(row):
    """GET of a sealed invoice the store could not file (issue 8): the device's sealed answer,
    unchanged, and why it is held aside."""
    sealed = json.loads(row["sealed_json"])["payload"]
    sealed["quarantine"] = {"seq": row["seq"], "reason": row["reason"]}
    return sealed
