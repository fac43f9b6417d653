"""Issue 12: the CSV export and its reconciliation, and the accounting export (JSON and NDJSON),
against the real daemon; plus the formats themselves."""

import csv
import io
import json
import os

import pytest

from hostd.books import accounting, csvio
from hostd.errors import InvalidPayload
from hostd.sdk.transport import request
from tests.daemonkit import SAMPLES, Stack, sample, utc_now

SEED_CSV = """invoice_number,issue_date,client_name,tax_group,subtotal,total_vat,total,status
KUTA001-105,2026-02-16,SF Enterprises,TG02,100000,16000,116000,fiscalized
+KUTA001-106,2026-02-16,Embassy of Kinshasa,TG01,500,0,500,fiscalized
"""


def seed_invoice(name, timestamp, group, amount, rate):
    """A canonical invoice like a seed CSV row: one item of ``amount`` currency units, dated
    ``timestamp`` (the device seals only a timestamp within -48 h / +5 min of its clock, so the
    seed's 2026-02-16 rows become today's)."""
    doc = json.loads(sample(timestamp=timestamp))
    doc["client"]["name"] = name
    doc["items"] = [{"code": "X", "description": "", "quantity": 1, "unit_price": amount, "tax_group": group,
                     "taxable_unit": ""}]
    tax = amount * rate // 100
    doc["tax_groups"] = [{"code": group, "name": "", "rate": rate / 100, "base_amount": amount, "tax_amount": tax}]
    doc["totals"] = {"subtotal": amount, "total_vat": tax, "total": amount + tax, "currency": "CDF"}
    doc["payments"] = [{"method": "cash", "amount": amount + tax, "instrument_id": "", "currency": "CDF"}]
    return json.dumps(doc).encode()


@pytest.fixture
def stack(tmp_path):
    """A daemon of each test's own: the invoices are all dated now, so a test's export ranges
    hold its own invoices only because no other test's are in the store."""
    s = Stack(tmp_path)
    s.start_daemon(extra=["--merchant", os.path.join(SAMPLES, "merchant.json")])
    yield s
    s.close()


def fetch(stack, path):
    status, headers, body = request(stack.socket, "GET", path)
    assert status == 200, body
    return headers, body


@pytest.mark.slow
def test_the_seed_csv_reconciles_row_by_row_once_its_numbers_are_real(stack):
    now = utc_now()
    a = stack.pos.seal(seed_invoice("SF Enterprises", now, "TG02", 100000, 16), key="seed-105")[1]
    b = stack.pos.seal(seed_invoice("Embassy of Kinshasa", now, "TG01", 500, 0), key="seed-106")[1]
    # the seed's second cell reads "+KUTA001-106" (a diff marker, or a formula-looking cell): the
    # whole cell is the invoice number that is replaced; the seed's issue date becomes the day sealed
    text = SEED_CSV.replace("KUTA001-105", a["payload"]["fiscal_number"]).replace(
        "+KUTA001-106", b["payload"]["fiscal_number"]).replace("2026-02-16", now[:10])
    status, data = stack.pos.post("/api/v1/imports/invoices.csv", text.encode(), headers={"Content-Type": "text/csv"})
    doc = json.loads(data)["payload"]
    assert status == 200 and (doc["matched"], doc["mismatched"], doc["unknown"]) == (2, 0, 0), doc
    wrong = text.replace(",500,0,500,", ",501,0,500,").replace("SF Enterprises", "SF Enterprise")
    doc = json.loads(stack.pos.post("/api/v1/imports/invoices.csv", (wrong + "NOPE-1,2026-02-16,x,TG01,1,0,1,"
                                                                     "fiscalized\n").encode())[1])["payload"]
    assert [(r["result"], r.get("columns")) for r in doc["rows"]] == [
        ("mismatched", ["client_name"]), ("mismatched", ["subtotal"]), ("unknown", None)]
    status, data = stack.pos.post("/api/v1/imports/invoices.csv", b"a,b\n1,2\n")
    assert status == 400 and json.loads(data)["field"] == "invoice_number"


@pytest.mark.slow
def test_the_export_neutralises_formulas_but_not_numbers(stack):
    now = utc_now()
    status, doc = stack.pos.seal(seed_invoice("=HYPERLINK(\"http://x\")", now, "TG02", 100, 16), key="formula")
    assert status == 200, doc
    credit = json.loads(seed_invoice("-Credit client", now, "TG02", 100, 16))
    credit["invoice_type"] = "credit_note"
    credit["credit"] = {"original_fiscal_number": doc["payload"]["fiscal_number"], "reason": "returned"}
    status, doc = stack.pos.seal(json.dumps(credit).encode(), key="credit")
    assert status == 200, doc   # protocol 3: a credit note names its original
    _, body = fetch(stack, "/api/v1/exports/invoices.csv?from=%s&to=%s" % (now[:10], now[:10]))
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [r["client_name"] for r in rows] == ["'=HYPERLINK(\"http://x\")", "'-Credit client"]
    assert rows[1]["subtotal"] == "-100.00" and rows[1]["total"] == "-116.00"   # numbers stay numbers
    assert body.startswith(b"invoice_number,issue_date,client_name,tax_group,subtotal,total_vat,total,status\r\n")


@pytest.mark.slow
def test_the_accounting_export_and_its_ndjson_trailer(stack):
    now = utc_now()
    period = now[:7]
    stack.pos.seal(seed_invoice("Acme", now, "TG02", 1000, 16), key="acc-1")
    stack.pos.seal(seed_invoice("Embassy", now, "TG01", 500, 0), key="acc-2")
    _, body = fetch(stack, "/api/v1/exports/accounting?period=" + period)
    doc = json.loads(body)["payload"]
    assert doc["period"] == period and doc["currency"] == "CDF"
    assert [(e["account_code"], e["amount"], e["tax_group"]) for e in doc["entries"]] == [
        ("411001", "1160.00", "TG02"), ("411002", "500.00", "TG01")]
    _, nd = fetch(stack, "/api/v1/exports/accounting?period=%s&format=ndjson" % period)
    trailer = accounting.check_ndjson(nd)
    assert trailer["count"] == 2 and len(trailer["chain_head"]["hash"]) == 64
    lines = nd.split(b"\n")
    for cut in (nd[:-1], b"\n".join(lines[:2]) + b"\n" + lines[-2] + b"\n", nd[: len(nd) // 2]):
        with pytest.raises(InvalidPayload):
            accounting.check_ndjson(cut)
    status, _, err = request(stack.socket, "GET", "/api/v1/exports/accounting?period=2026-13")
    assert status == 400 and json.loads(err)["field"] == "period"


def test_account_rules_take_the_most_specific():
    accounts = accounting.load_accounts({"client_class": {"Embassy": "411009"}, "payment_method": {"card": "411005"}})
    assert accounting.account_for(accounts, "TG02", "card", "Embassy") == "411009"
    assert accounting.account_for(accounts, "TG02", "card", "Company") == "411005"
    assert accounting.account_for(accounts, "TG02", "cash", "Company") == "411001"
    assert accounting.account_for(accounts, "TG07", "cash", "Company") == "411000"


def test_neutralising_round_trips():
    for text in ("=1+1", "+x", "-y", "@z", "\tt", "plain", "", "'quoted"):
        assert csvio.unneutral(csvio.neutral(text)) == text
