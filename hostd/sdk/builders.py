"""Invoice builders (issue 14): a POS adds lines and payments, the builder emits the canonical
invoice in the mandated field order with every total computed (hostd/intake/pricing.py, the
device's own rounding rule), so a POS never hand-computes a total or orders a key.

Amounts are given in currency units as ``Decimal``, ``int`` or decimal strings (``"500.00"``) and
must be exact in the minor unit; quantities may have up to 3 decimals. ``discount`` is an amount
off a line; ``prices_include_tax=True`` reads unit prices as tax-inclusive shelf prices. Both are
sealed as exact net canonical amounts, as hostd/intake/pricing.py documents. With tax-inclusive
prices the sealed total can be one minor unit below the shelf total (``rounding``): charge
``totals()["total"]``, which is what the receipt shows.
"""

import time
from decimal import Decimal
from typing import Any, Dict, List, Optional, Union

from protocol import invoice as canonical, taxgroups, timefmt
from hostd.intake import pricing
from hostd.intake.amounts import money_text, quantity_text, rate_text, scaled

Amount = Union[Decimal, int, str]


class InvoiceBuilder:
    def __init__(self, merchant_nif: str, outlet_id: str, pos_terminal_id: str, cashier_id: str,
                 currency: str = "CDF", invoice_type: str = "sale", prices_include_tax: bool = False,
                 timestamp: Optional[str] = None, rates: Optional[Dict[str, int]] = None) -> None:
        if currency not in taxgroups.CURRENCIES:
            raise ValueError("currency must be one of %s" % ", ".join(sorted(taxgroups.CURRENCIES)))
        self.fields = {"merchant_nif": merchant_nif, "outlet_id": outlet_id, "pos_terminal_id": pos_terminal_id,
                       "cashier_id": cashier_id, "invoice_type": invoice_type}
        self.currency = currency
        self.digits = taxgroups.CURRENCIES[currency]
        self.inclusive = prices_include_tax
        self.timestamp = timestamp or timefmt.format_time(int(time.time()))
        self.rates = rates if rates is not None else pricing.rates_at(self.timestamp)
        self._client = {"name": "", "nif": "", "classification": "Individual"}
        self._lines: List[Dict[str, Any]] = []
        self._payments: List[Dict[str, Any]] = []
        self.extra: Dict[str, Any] = {}

    def _minor(self, value: Amount, field: str) -> int:
        return scaled(value, 10 ** self.digits, field, "the currency's minor unit")

    def client(self, name: str = "", nif: str = "", classification: str = "Individual") -> "InvoiceBuilder":
        self._client = {"name": name, "nif": nif, "classification": classification}
        return self

    def item(self, code: str, quantity: Amount, unit_price: Amount, tax_group: str, description: str = "",
             taxable_unit: str = "", discount: Amount = 0) -> "InvoiceBuilder":
        where = "items[%d]" % len(self._lines)
        self._lines.append({"code": code, "description": description, "taxable_unit": taxable_unit,
                            "quantity": scaled(quantity, canonical.QTY_SCALE, where + ".quantity", "thousandths"),
                            "unit_price": self._minor(unit_price, where + ".unit_price"), "tax_group": tax_group,
                            "discount": self._minor(discount, where + ".discount")})
        return self

    def pay(self, method: str, amount: Optional[Amount] = None, instrument_id: str = "") -> "InvoiceBuilder":
        """A payment; ``amount`` None pays what is left of the total."""
        self._payments.append({"method": method, "instrument_id": instrument_id,
                               "amount": None if amount is None else self._minor(amount, "payments.amount")})
        return self

    def credit(self, original_fiscal_number: str, reason: str = "") -> "InvoiceBuilder":
        """Name the original a credit type (``credit_note``, ``export_credit``) credits: the
        ``credit`` field, last (README "Credit notes")."""
        self.extra["credit"] = {"original_fiscal_number": original_fiscal_number, "reason": reason}
        return self

    def totals(self) -> Dict[str, int]:
        """The sealed totals in minor units (and the tax-inclusive ``rounding``)."""
        items, lines, totals, rounding = pricing.lines_to_invoice(self._lines, self.rates, self.inclusive)
        return dict(totals, rounding=rounding)

    def build(self) -> Dict[str, Any]:
        """The canonical JSON document, fields in the mandated order, ready to POST."""
        if not self._lines:
            raise ValueError("an invoice needs at least one item")
        items, lines, totals, _ = pricing.lines_to_invoice(self._lines, self.rates, self.inclusive)
        digits = self.digits
        paid, payments = 0, []
        for p in self._payments or [{"method": "cash", "instrument_id": "", "amount": None}]:
            amount = totals["total"] - paid if p["amount"] is None else p["amount"]
            paid += amount
            payments.append({"method": p["method"], "amount": money_text(amount, digits),
                             "instrument_id": p["instrument_id"], "currency": self.currency})
        doc: Dict[str, Any] = dict(self.fields)
        doc["timestamp"] = self.timestamp
        doc["client"] = dict(self._client)
        doc["items"] = [{"code": i["code"], "description": i["description"], "quantity": quantity_text(i["quantity"]),
                         "unit_price": money_text(i["unit_price"], digits), "tax_group": i["tax_group"],
                         "taxable_unit": i["taxable_unit"]} for i in items]
        doc["tax_groups"] = [{"code": t["code"], "name": "", "rate": rate_text(t["rate"]),
                              "base_amount": money_text(t["base_amount"], digits),
                              "tax_amount": money_text(t["tax_amount"], digits)} for t in lines]
        doc["totals"] = {"subtotal": money_text(totals["subtotal"], digits),
                         "total_vat": money_text(totals["total_vat"], digits),
                         "total": money_text(totals["total"], digits), "currency": self.currency}
        doc["payments"] = payments
        doc.update(self.extra)
        return doc
