"""The seeds' other payload shapes, mapped onto the one canonical invoice (issue 12).

Every mapping produces a canonical JSON document that then takes exactly the path a POS invoice
takes (hostd/intake/canonical.py, the device's checks, one seal): nothing here invents a fiscal
number, a seal time stamp or an auth code; those only ever come from the device.

- **Compatibility rule for POST /api/v1/invoices** (seed 000 section 1, KutaPay's example,
  accepted verbatim): ``client.registration`` is read as ``client.nif``; a classification is
  matched without regard to case (``company`` is ``Company``); a client identified by its nif
  may leave out ``name`` (an empty name is sealed); a client with neither is refused naming
  ``client``; a payment without ``currency`` takes ``totals.currency``; merchant fields left out
  (``merchant_nif``, ``outlet_id``, ``pos_terminal_id``, ``cashier_id``) come from the daemon's
  merchant settings (hostd/intake/merchant.py). The fields that are present must still come in
  the canonical order. A ``timestamp`` left out is the time the daemon accepts the invoice
  (``accepted_at``: UTC, to the second), filled in before canonicalisation, so the canonical
  invoice and its hash carry it; a ``timestamp`` that is sent is sealed as sent (the device
  refuses one outside its tax profile's window around its clock: INVOICE_TIME_WINDOW). Either
  way the seal's own time stamp is the device's.
- **E-commerce order** (seed 000 section 5, ``POST /api/v1/orders``): ``line_items`` become items
  (``sku`` is the code); ``shipping`` becomes one more item ``SHIPPING`` in the merchant's
  shipping tax group; prices include tax unless the settings say otherwise, and are turned into
  exact net items by hostd/intake/pricing.py so that the sealed total equals what was paid; the
  customer becomes the client's name with the settings' classification; payments take the
  merchant currency. ``created_at`` (optional) is the invoice's own timestamp, else the time the
  daemon accepts it (the seal's time stamp is the device's, as always).
- **ERP invoice** (seed 000 section 6, ``POST /api/v1/erp/invoices``): ``invoice_lines`` become
  items (``product_code`` is the code), prices are net; the sent ``totals`` must equal what the
  lines give; an invoice without payments is sealed as paid ``on_account`` (the settings'
  method) with the connector reference as instrument; ``connector_reference`` is kept with the
  request and returned in the answer; ``fiscal_metadata.merchant_nif`` is the merchant;
  ``timestamp`` (optional) is the invoice's own, else the time the daemon accepts it.
"""

import time

from protocol import invoice, timefmt
from hostd.errors import InvalidPayload
from hostd.intake import pricing
from hostd.intake.amounts import money_text, quantity_text, rate_text, scaled

ORDER = [entry[1] for entry in invoice.INVOICE]
TRAILING = [entry[1] for entry in invoice.OPTIONAL]   # ``credit``, last, on the credit types only
MERCHANT_FIELDS = ("merchant_nif", "outlet_id", "pos_terminal_id", "cashier_id")


def accepted_at(clock=time.time):
    """The current UTC time to the second, ``YYYY-MM-DDTHH:MM:SSZ``: the timestamp of an invoice,
    order or ERP invoice that leaves its own out, taken when the daemon accepts it."""
    return timefmt.format_time(int(clock()))


def _classification(value):
    if isinstance(value, str):
        for name in invoice.CLASSIFICATIONS:
            if value.replace("_", "").replace(" ", "").lower() == name.lower():
                return name
    return value   # the strict check names it


def complete(doc, merchant=None, now=None):
    """The compatibility rule above, on a POS document (a dict in the order sent); ``now`` is the
    timestamp a document without one gets (default: ``accepted_at()``)."""
    if not isinstance(doc, dict):
        return doc
    known = ORDER + TRAILING
    present = [name for name in doc if name in known]
    if present != sorted(present, key=known.index) or len(present) != len(doc):
        return doc   # the strict check reports the misplaced or unknown field
    missing = [name for name in MERCHANT_FIELDS if name not in doc]
    defaults = merchant.fields(doc.get("outlet_id")) if merchant is not None else {}
    out = {}
    for name in ORDER:
        if name in doc:
            out[name] = doc[name]
        elif name in missing and name in defaults:
            out[name] = defaults[name]
        elif name == "timestamp":
            out[name] = now if now is not None else accepted_at()
    for name in TRAILING:
        if name in doc:
            out[name] = doc[name]
    client = out.get("client")
    if isinstance(client, dict):
        out["client"] = _client(client)
    totals, payments = out.get("totals"), out.get("payments")
    if isinstance(totals, dict) and isinstance(payments, list):
        out["payments"] = [dict(p, currency=totals.get("currency")) if isinstance(p, dict) and "currency" not in p
                           else p for p in payments]
    return out


def _client(client):
    fixed = {}
    nif = client.get("nif", client.get("registration"))
    if "name" not in client and not nif:
        raise InvalidPayload("client needs a name or a nif (registration)", "client")
    fixed["name"] = client.get("name", "")
    fixed["nif"] = nif if nif is not None else ""
    if "classification" in client:
        fixed["classification"] = _classification(client["classification"])
    for key in client:
        if key not in ("name", "nif", "registration", "classification"):
            fixed[key] = client[key]   # unknown: the strict check names it
    return fixed


def _lines(entries, path, code_key, currency_digits):
    if not isinstance(entries, list) or not entries:
        raise InvalidPayload("%s must be a non-empty array" % path, path)
    lines = []
    for i, entry in enumerate(entries):
        where = "%s[%d]" % (path, i)
        if not isinstance(entry, dict):
            raise InvalidPayload("%s must be an object" % where, where)
        for key in (code_key, "quantity", "unit_price", "tax_group"):
            if key not in entry:
                raise InvalidPayload("missing field %s.%s" % (where, key), "%s.%s" % (where, key))
        lines.append({"code": entry[code_key], "description": entry.get("description", ""),
                      "quantity": scaled(entry["quantity"], invoice.QTY_SCALE, where + ".quantity", "thousandths"),
                      "unit_price": scaled(entry["unit_price"], 10 ** currency_digits, where + ".unit_price",
                                           "the currency's minor unit"),
                      "tax_group": entry["tax_group"], "taxable_unit": entry.get("taxable_unit", "")})
    return lines


def document(fields, itype, timestamp, client, items, tax_lines, totals, payments, currency, digits):
    """The canonical JSON document (decimal strings, canonical order) of mapped parts: also the
    credit notes the daemon makes of an original (hostd/books/credit_notes.py)."""
    doc = {name: fields[name] for name in MERCHANT_FIELDS}
    doc.update({"invoice_type": itype, "timestamp": timestamp, "client": client})
    doc["items"] = [{"code": it["code"], "description": it["description"], "quantity": quantity_text(it["quantity"]),
                     "unit_price": money_text(it["unit_price"], digits), "tax_group": it["tax_group"],
                     "taxable_unit": it["taxable_unit"]} for it in items]
    doc["tax_groups"] = [{"code": t["code"], "name": "", "rate": rate_text(t["rate"]),
                          "base_amount": money_text(t["base_amount"], digits),
                          "tax_amount": money_text(t["tax_amount"], digits)} for t in tax_lines]
    doc["totals"] = {"subtotal": money_text(totals["subtotal"], digits), "total_vat": money_text(totals["total_vat"], digits),
                     "total": money_text(totals["total"], digits), "currency": currency}
    doc["payments"] = [{"method": p["method"], "amount": money_text(p["amount"], digits),
                        "instrument_id": p.get("instrument_id", ""), "currency": currency} for p in payments]
    return doc


def _merchant_fields(merchant, nif=None):
    fields = merchant.fields() if merchant is not None else {}
    if nif:
        fields["merchant_nif"] = nif
    for name in MERCHANT_FIELDS:
        if name not in fields:
            raise InvalidPayload("no %s: start the daemon with --merchant FILE (README, 'Payload shapes')" % name, name)
    return fields


def order_invoice(doc, merchant, now, digits=2):
    """An e-commerce order (seed 000 section 5) -> canonical JSON document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("order_id"), str) or not doc["order_id"]:
        raise InvalidPayload("order must be an object with a non-empty order_id", "order_id")
    fields = _merchant_fields(merchant)
    settings = merchant.orders
    timestamp = doc.get("created_at", now)
    rates = pricing.rates_at(timestamp)
    lines = _lines(doc.get("line_items"), "line_items", "sku", digits)
    shipping = doc.get("shipping")
    if shipping is not None:
        if not isinstance(shipping, dict) or "amount" not in shipping:
            raise InvalidPayload("shipping must be an object with an amount", "shipping")
        amount = scaled(shipping["amount"], 10 ** digits, "shipping.amount", "the currency's minor unit")
        if amount:
            lines.append({"code": "SHIPPING", "description": "Shipping (%s)" % shipping.get("method", ""),
                          "quantity": invoice.QTY_SCALE, "unit_price": amount,
                          "tax_group": settings["shipping_tax_group"], "taxable_unit": ""})
    items, tax_lines, totals, _ = pricing.lines_to_invoice(lines, rates, inclusive=settings["prices_include_tax"],
                                                           pay="gross", exempt_group=settings["exempt_group"])
    payments = _payments(doc.get("payments"), digits, "payments")
    customer = doc.get("customer", "")
    client = {"name": customer if isinstance(customer, str) else "", "nif": "",
              "classification": settings["classification"]}
    return document(fields, "sale", timestamp, client, items, tax_lines, totals, payments, merchant.currency, digits)


def erp_invoice(doc, merchant, now, digits=2):
    """An ERP invoice (seed 000 section 6) -> (canonical JSON document, connector reference)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("connector_reference"), str) \
            or not doc["connector_reference"]:
        raise InvalidPayload("ERP invoice must be an object with a non-empty connector_reference",
                             "connector_reference")
    meta = doc.get("fiscal_metadata") if isinstance(doc.get("fiscal_metadata"), dict) else {}
    fields = _merchant_fields(merchant, meta.get("merchant_nif"))
    totals_in = doc.get("totals") if isinstance(doc.get("totals"), dict) else {}
    currency = totals_in.get("currency", merchant.currency)
    timestamp = doc.get("timestamp", now)
    lines = _lines(doc.get("invoice_lines"), "invoice_lines", "product_code", digits)
    items, tax_lines, totals, _ = pricing.lines_to_invoice(lines, pricing.rates_at(timestamp))
    for name in ("subtotal", "total_vat", "total"):
        if name in totals_in:
            sent = scaled(totals_in[name], 10 ** digits, "totals." + name, "the currency's minor unit")
            if sent != totals[name]:
                raise InvalidPayload("totals.%s is %s, the invoice lines give %s" % (
                    name, money_text(sent, digits), money_text(totals[name], digits)), "totals." + name)
    client_in = doc.get("client") if isinstance(doc.get("client"), dict) else {}
    client = _client(client_in) if client_in else {"name": "", "nif": ""}
    client.setdefault("classification", "Company")
    payments = doc.get("payments")
    payments = _payments(payments, digits, "payments") if payments else [
        {"method": merchant.erp["payment_method"], "amount": totals["total"],
         "instrument_id": doc["connector_reference"]}]
    return (document(fields, doc.get("invoice_type", "sale"), timestamp, client, items, tax_lines, totals,
                      payments, currency, digits), doc["connector_reference"])


def _payments(entries, digits, path):
    if not isinstance(entries, list) or not entries:
        raise InvalidPayload("%s must be a non-empty array" % path, path)
    out = []
    for i, entry in enumerate(entries):
        where = "%s[%d]" % (path, i)
        if not isinstance(entry, dict) or "amount" not in entry or "method" not in entry:
            raise InvalidPayload("%s needs a method and an amount" % where, where)
        out.append({"method": entry["method"], "instrument_id": entry.get("instrument_id", ""),
                    "amount": scaled(entry["amount"], 10 ** digits, where + ".amount", "the currency's minor unit")})
    return out
