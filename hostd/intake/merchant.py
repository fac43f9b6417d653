"""The merchant's own settings that a payload may leave out (issue 12): who issues the invoice,
from which outlet, terminal and cashier, in which currency, and how web-shop and ERP payloads map.

A POS always sends the four merchant fields of the canonical invoice; an e-commerce order or an
ERP connector usually does not know them. ``fiscal daemon --merchant FILE`` names a JSON file::

    {"merchant_nif": "123456789", "currency": "CDF", "default_outlet": "OUTLET-42",
     "outlets": {"OUTLET-42": {"pos_terminal_id": "WEB-01", "cashier_id": "web-shop"}},
     "orders": {"prices_include_tax": true, "shipping_tax_group": "TG03",
                "classification": "Individual", "exempt_group": "TG01"},
     "erp": {"payment_method": "on_account"},
     "verify_url": "https://verify.example.cd/?qr="}

Only ``merchant_nif`` is required; every other key has the default shown in ``DEFAULTS``. The
values fill what a payload leaves out and never override what it sends.
"""

from hostd.errors import InvalidPayload
from hostd.intake import strictjson

DEFAULTS = {"currency": "CDF", "default_outlet": None, "outlets": {},
            "orders": {"prices_include_tax": True, "shipping_tax_group": "TG03", "classification": "Individual",
                       "exempt_group": "TG01"},
            "erp": {"payment_method": "on_account"}}
TERMINAL = {"pos_terminal_id": "daemon", "cashier_id": "daemon"}


class Merchant:
    def __init__(self, doc=None):
        doc = doc or {}
        self.merchant_nif = doc.get("merchant_nif")
        self.currency = doc.get("currency", DEFAULTS["currency"])
        self.default_outlet = doc.get("default_outlet") or (sorted(doc.get("outlets", {}))[:1] or [None])[0]
        self.outlets = doc.get("outlets", {})
        self.orders = dict(DEFAULTS["orders"], **doc.get("orders", {}))
        self.erp = dict(DEFAULTS["erp"], **doc.get("erp", {}))
        self.verify_url = doc.get("verify_url")   # receipts: the QR wraps the payload in this URL

    def fields(self, outlet=None):
        """The merchant fields for ``outlet`` (or the default outlet): a dict, possibly partial."""
        outlet = outlet or self.default_outlet
        out = {}
        if self.merchant_nif:
            out["merchant_nif"] = self.merchant_nif
        if outlet:
            out["outlet_id"] = outlet
            terminal = dict(TERMINAL, **self.outlets.get(outlet, {}))
            out["pos_terminal_id"] = terminal["pos_terminal_id"]
            out["cashier_id"] = terminal["cashier_id"]
        return out


def load(path):
    """A Merchant from ``path``, or InvalidPayload naming what is wrong with the file."""
    with open(path, "rb") as fh:
        doc = strictjson.loads(fh.read(), field="merchant file")
    if not isinstance(doc, dict) or not isinstance(doc.get("merchant_nif"), str) or not doc["merchant_nif"]:
        raise InvalidPayload("merchant file %s needs a non-empty merchant_nif" % path, "merchant_nif")
    if not isinstance(doc.get("outlets", {}), dict):
        raise InvalidPayload("merchant file %s: outlets must be an object of outlet ids" % path, "outlets")
    return Merchant(doc)
