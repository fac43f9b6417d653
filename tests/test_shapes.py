"""Issue 12: the seeds' other payload shapes, mapped onto the canonical invoice and sealed through
the same path: KutaPay's example verbatim, an e-commerce order, an ERP invoice, and a batch."""

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostd.errors import InvalidPayload
from hostd.intake import merchant, pricing, shapes, strictjson
from hostd.intake.canonical import parse_invoice
from hostd.api.accept import document_bytes
from protocol import invoice
from tests.daemonkit import SAMPLES, Stack, sample, utc_now

MERCHANT = os.path.join(SAMPLES, "merchant.json")
NOW = "2026-12-01T10:00:00Z"


def read(name):
    with open(os.path.join(SAMPLES, name), "rb") as fh:
        return fh.read()


def test_kutapay_example_is_accepted_verbatim_by_the_compatibility_rule():
    parsed = parse_invoice(read("kutapay-000-example.json"))
    assert parsed.summary["total"] == 11600000 and parsed.columns["client_nif"] == "CUST-555"
    client = json.loads(read("kutapay-000-example.json"))
    client["client"] = {"classification": "company"}          # neither name nor nif
    with pytest.raises(InvalidPayload) as info:
        parse_invoice(json.dumps(client).encode())
    assert info.value.field == "client"


def test_missing_merchant_fields_come_from_the_settings_and_order_still_counts():
    doc = json.loads(read("kutapay-000-example.json"))
    for name in ("merchant_nif", "pos_terminal_id", "cashier_id"):
        del doc[name]
    with pytest.raises(InvalidPayload) as info:
        parse_invoice(json.dumps(doc).encode())                # no settings: still refused
    assert info.value.field == "merchant_nif"
    parsed = parse_invoice(json.dumps(doc).encode(), merchant.load(MERCHANT))
    assert parsed.doc["merchant_nif"] == "123456789" and parsed.doc["pos_terminal_id"] == "WEB-01"
    swapped = {k: doc[k] for k in ["invoice_type", "outlet_id"] + [k for k in doc if k not in ("invoice_type", "outlet_id")]}
    with pytest.raises(InvalidPayload):
        parse_invoice(json.dumps(swapped).encode(), merchant.load(MERCHANT))


def test_the_seed_order_seals_exactly_what_was_paid():
    doc = shapes.order_invoice(strictjson.loads(read("order-000-ecommerce.json")), merchant.load(MERCHANT), NOW)
    parsed = parse_invoice(document_bytes(doc))
    assert parsed.summary["total"] == 11400000                 # the 114000 paid, tax included
    assert [item["code"] for item in doc["items"]] == ["ECOM-SOLAR", "SHIPPING"]
    assert doc["items"][1]["tax_group"] == "TG03"


def test_the_seed_erp_invoice_keeps_its_reference_and_checks_its_totals():
    erp = strictjson.loads(read("erp-000-invoice.json"))
    doc, reference = shapes.erp_invoice(erp, merchant.load(MERCHANT), NOW)
    assert reference == "ODOO-SO-299" and parse_invoice(document_bytes(doc)).summary["total"] == 29000000
    assert doc["payments"] == [{"method": "on_account", "amount": "290000.00", "instrument_id": "ODOO-SO-299",
                                "currency": "CDF"}]
    erp["totals"]["total_vat"] = 41000
    with pytest.raises(InvalidPayload) as info:
        shapes.erp_invoice(erp, merchant.load(MERCHANT), NOW)
    assert info.value.field == "totals.total_vat"


RATES = pricing.rates_at(NOW)
line = st.fixed_dictionaries({
    "code": st.just("X"), "quantity": st.integers(1, 50000), "unit_price": st.integers(0, 10 ** 7),
    "tax_group": st.sampled_from(["TG01", "TG02", "TG04", "TG14"]),
    "discount": st.integers(0, 1000)}).filter(lambda l: l["discount"] <= l["quantity"] * l["unit_price"] // 1000)


@settings(max_examples=300, deadline=None)
@given(st.lists(line, min_size=1, max_size=6), st.booleans(), st.sampled_from(["total", "gross"]))
def test_the_pricing_helper_always_gives_what_the_device_accepts(lines, inclusive, pay):
    items, tax_lines, totals, rounding = pricing.lines_to_invoice(lines, RATES, inclusive, pay, "TG01")
    canonical = {1: "1", 2: "o", 3: "t", 4: "c", 5: "sale", 6: NOW, 7: {1: "", 2: "", 3: "Individual"},
                 8: [{1: i["code"], 2: i["description"], 3: i["quantity"], 4: i["unit_price"], 5: i["tax_group"],
                      6: i["taxable_unit"]} for i in items],
                 9: [{1: t["code"], 2: "", 3: t["rate"], 4: t["base_amount"], 5: t["tax_amount"]} for t in tax_lines],
                 10: {1: totals["subtotal"], 2: totals["total_vat"], 3: totals["total"], 4: "CDF"},
                 11: [{1: "cash", 2: totals["total"], 3: "", 4: "CDF"}]}
    summary = invoice.check(canonical)                          # the device's own rule agrees
    gross = sum(invoice.round_half_up(l["quantity"] * l["unit_price"], 1000) - l["discount"] for l in lines)
    if inclusive:
        assert summary["total"] + rounding == gross and 0 <= rounding <= len(lines)
        assert pay == "total" or rounding == 0
    else:
        assert summary["subtotal"] == gross and rounding == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("shapes"))
    s.start_daemon(extra=["--merchant", MERCHANT])
    yield s
    s.close()


@pytest.mark.slow
@pytest.mark.parametrize("path,name", [("/api/v1/invoices", "kutapay-000-example.json"),
                                       ("/api/v1/orders", "order-000-ecommerce.json"),
                                       ("/api/v1/erp/invoices", "erp-000-invoice.json")])
def test_the_seed_examples_are_sealed_as_shipped(stack, path, name):
    """The order and the ERP invoice carry no date, so they are sent byte for byte as shipped and
    dated when the daemon accepts them. KutaPay's example is seed 000's verbatim, with the seed's
    own timestamp (2026-02-17T12:15:00Z); a timestamp that is sent is sealed as sent, and the
    device refuses one outside -48 h / +5 min of its clock (INVOICE_TIME_WINDOW), so it is sent
    with only that timestamp replaced by a current one: every other byte is the shipped file's."""
    body = read(name)
    if name == "kutapay-000-example.json":
        seeded = b'"timestamp": "2026-02-17T12:15:00Z"'
        assert body.count(seeded) == 1
        body = body.replace(seeded, ('"timestamp": "%s"' % utc_now()).encode())
    status, data = stack.pos.post(path, body)
    assert status == 200, data
    doc = json.loads(data)
    assert doc["code"] == "INVOICE_FISCALIZED"
    if path != "/api/v1/invoices":                              # natural keys: order id, connector reference
        assert stack.pos.post(path, body) == (status, data)
    if path.startswith("/api/v1/erp"):
        assert doc["payload"]["connector_reference"] == "ODOO-SO-299"
        status, got = stack.pos.get("/api/v1/invoices/%s" % doc["payload"]["fiscal_number"])
        assert got["payload"]["reference"] == "ODOO-SO-299"


@pytest.mark.slow
def test_a_batch_of_500_with_3_bad_items(stack):
    items = []
    for i in range(500):
        invoice_doc = json.loads(sample(cashier_id="batch-%d" % i))
        if i in (7, 250, 499):
            invoice_doc["totals"]["total"] = "1.00"             # three bad items
        items.append({"idempotency_key": "batch-%d" % i, "invoice": invoice_doc})
    body = json.dumps({"invoices": items}).encode()
    status, data = stack.pos.post("/api/v1/invoices/batch", body, timeout=120)
    assert status == 200
    results = json.loads(data)["payload"]["results"]
    assert [r["index"] for r in results] == list(range(500))
    bad = [r for r in results if r["http_status"] != 200]
    assert [r["index"] for r in bad] == [7, 250, 499]
    assert all(r["response"]["code"] == "INVALID_CANONICAL_PAYLOAD" and r["response"]["field"] == "totals.total"
               for r in bad)
    counters = [r["response"]["payload"]["counter"] for r in results if r["http_status"] == 200]
    assert len(counters) == 497 and counters == list(range(counters[0], counters[0] + 497))
    status, again = stack.pos.post("/api/v1/invoices/batch", body, timeout=120)   # a retried batch replays
    assert json.loads(again)["payload"]["results"] == results
