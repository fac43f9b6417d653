"""Issue 11 points 4-6 end to end: X, Z, M, Y and A reports from the real emulator through the real
daemon, their bundles, inclusion proofs checked by ``fiscal verify --receipt``, the technical log,
and ``report.generated`` at a real webhook receiver on 127.0.0.1.

Figures are checked against an independent sum over the journal records of the period, taken
from the audit export (the device's own records), never against what the daemon computed."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from hostd.books.export import load_export
from hostd.sdk.transport import request
from protocol import record
from tests.daemonkit import Stack, sample
from tests.webhookkit import Receiver

pytestmark = pytest.mark.slow


def post_report(stack, doc, key=None):
    status, data = stack.pos.post("/api/v1/reports", json.dumps(doc).encode(), key=key, timeout=60)
    return status, json.loads(data)


def export_records(stack):
    status, _, data = request(stack.socket, "GET", "/api/v1/audit/export", timeout=120)
    assert status == 200, data
    return [bytes.fromhex(r) for r in load_export(data)["records"]]


def independent_sum(records, first, last):
    """{currency: {code: [sales base, sales tax, credit base, credit tax]}} and the fiscal counters
    of the INVOICE records with seq in first..last."""
    sums, counters = {}, []
    for rec in records:
        fields = record.decode(rec)[0]
        if not first <= fields[record.K_SEQ] <= last or fields[record.K_TYPE] != record.INVOICE:
            continue
        counters.append(fields[record.K_COUNTER])
        credit = fields[record.K_INVOICE_TYPE] in ("credit_note", "export_credit")
        table = sums.setdefault(fields[record.K_CURRENCY], {})
        for code, _, base, tax in fields[record.K_GROUPS]:
            cell = table.setdefault(code, [0, 0, 0, 0])
            cell[2 if credit else 0] += base
            cell[3 if credit else 1] += tax
    return sums, counters


def figures_of(summary):
    return {c["currency"]: {g["code"]: [g["sales_base_minor"], g["sales_tax_minor"], g["credit_base_minor"],
                                        g["credit_tax_minor"]] for g in c["groups"]}
            for c in summary["currencies"] if c["groups"]}


def seal_some(stack, tag, n):
    numbers = []
    for i in range(n):
        name = ("invoice-002-services.json", "invoice-000-goods.json")[i % 2]
        status, doc = stack.pos.seal(sample(name, cashier_id="%s-%d" % (tag, i)), key="%s-%d" % (tag, i))
        assert status == 200, doc
        numbers.append(doc["payload"]["fiscal_number"])
    return numbers


def run_verify(*args):
    return subprocess.run([sys.executable, "-m", "hostd", "verify"] + list(args), capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    receiver = Receiver()
    s = Stack(tmp_path_factory.mktemp("reports"))
    s.receiver = receiver
    try:
        s.start_daemon()
        hook = {"url": receiver.url, "events": ["report.generated"], "secret": "whsec_" + "QUJDREVGR0hJSktMTU5PUA=="}
        status, _ = s.pos.post("/api/v1/webhooks", json.dumps(hook).encode())
        assert status == 201
        yield s
    finally:
        s.close()
        receiver.close()


def test_z_figures_equal_the_journal_and_x_after_z_is_zero(stack, tmp_path):
    sold = seal_some(stack, "day1", 5)
    status, x = post_report(stack, {"type": "X"})
    assert status == 201, x
    status, z = post_report(stack, {"type": "Z"})
    assert status == 201, z
    zs = z["payload"]["summary"]
    first, last = zs["records"]["first_seq"], zs["records"]["last_seq"]
    sums, counters = independent_sum(export_records(stack), first, last)
    assert figures_of(zs) == sums and figures_of(x["payload"]["summary"]) == sums   # X before Z: the same
    assert zs["first_fiscal_number"] == sold[0] and zs["last_fiscal_number"] == sold[-1]
    assert sorted(counters) == list(range(counters[0], counters[0] + 5))
    assert sum(zs["counts"].values()) == 5
    status, x2 = post_report(stack, {"type": "X"})
    assert status == 201 and figures_of(x2["payload"]["summary"]) == {}          # X after Z: nothing open
    assert x2["payload"]["summary"]["first_fiscal_number"] is None

    later = seal_some(stack, "day1b", 3)
    status, z2 = post_report(stack, {"type": "Z"})
    assert status == 201, z2
    z2s = z2["payload"]["summary"]
    assert z2s["records"]["first_seq"] == z["payload"]["closure_seq"] + 1 == last + 2   # two Zs share nothing
    assert z2s["first_fiscal_number"] == later[0] and z2s["last_fiscal_number"] == later[-1]
    sums2, counters2 = independent_sum(export_records(stack), z2s["records"]["first_seq"], z2s["records"]["last_seq"])
    assert figures_of(z2s) == sums2 and not set(counters) & set(counters2)
    # perpetual grand total (NF525): the first Z's plus the second's net
    for c1, c2 in zip(zs["currencies"], z2s["currencies"]):
        assert c2["perpetual_total_minor"] == c1["perpetual_total_minor"] + c2["revenue_incl_tax_minor"]


def test_bundle_file_hash_and_csv(stack):
    status, z = post_report(stack, {"type": "Z"}) if not _reports(stack, "Z") else (201, {"payload": _reports(stack, "Z")[0]})
    report = z["payload"]
    status, headers, data = request(stack.socket, "GET", report["download_url"])
    assert status == 200 and hashlib.sha256(data).hexdigest() == report["bundle_sha256"]
    assert headers.get("X-Bundle-SHA256") == report["bundle_sha256"]
    bundle = json.loads(data)
    assert bundle["closure"]["hash"] == report["ledger_hash"]
    closure = bytes.fromhex(bundle["closure"]["record"])
    assert record.record_hash(bytes.fromhex(bundle["closure"]["prev"]), closure).hex() == report["ledger_hash"]
    on_disk = os.path.join(os.path.dirname(stack.db), "closures", report["report_id"] + ".json")
    with open(on_disk, "rb") as fh:
        assert fh.read() == data
    with open(on_disk + ".sha256") as fh:
        assert fh.read().split()[0] == report["bundle_sha256"]
    status, _, csv = request(stack.socket, "GET", report["download_url"] + "?format=csv")
    assert status == 200
    first, last = report["summary"]["first_fiscal_number"], report["summary"]["last_fiscal_number"]
    assert first in csv.decode() and last in csv.decode()


def _reports(stack, kind):
    status, doc = stack.pos.get("/api/v1/reports?type=%s" % kind)
    assert status == 200
    return doc["payload"]


def test_inclusion_proof_verifies_and_fails_for_a_flipped_byte(stack, tmp_path):
    seal_some(stack, "proof", 1)
    status, sealed = stack.pos.seal(sample(cashier_id="proof-x"), key="proof-x")
    assert status == 200
    number = sealed["payload"]["fiscal_number"]
    seal_some(stack, "proof-after", 1)
    status, doc = stack.pos.get("/api/v1/invoices/%s/proof" % number)
    assert status == 404 and "open period" in doc["detail"]
    status, z = post_report(stack, {"type": "Z"})
    assert status == 201
    status, proof = stack.pos.get("/api/v1/invoices/%s/proof" % number)
    assert status == 200, proof
    _, _, bundle = request(stack.socket, "GET", z["payload"]["download_url"])
    paths = {"receipt": tmp_path / "receipt.json", "proof": tmp_path / "proof.json", "closure": tmp_path / "z.json"}
    paths["receipt"].write_text(json.dumps(sealed))   # the answer the POS got
    paths["proof"].write_text(json.dumps(proof))
    paths["closure"].write_bytes(bundle)
    args = ["--receipt", str(paths["receipt"]), "--proof", str(paths["proof"]), "--closure", str(paths["closure"]),
            "--json"]
    done = run_verify(*args)
    assert done.returncode == 0, done.stderr + done.stdout
    assert json.loads(done.stdout)["fiscal_number"] == number

    def flipped(text, at):
        return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1:]

    bad = dict(proof["payload"])
    bad["path"] = [flipped(bad["path"][0], 10)] + bad["path"][1:]
    paths["proof"].write_text(json.dumps(bad))
    done = run_verify(*args)
    assert done.returncode == 1 and json.loads(done.stdout)["reason"] == "VERIFY_PROOF"
    paths["proof"].write_text(json.dumps(proof))

    receipt = json.loads(paths["receipt"].read_text())
    tampered = dict(receipt["payload"], signed_record=flipped(receipt["payload"]["signed_record"], 40))
    paths["receipt"].write_text(json.dumps(tampered))
    done = run_verify(*args)
    assert done.returncode == 1 and json.loads(done.stdout)["reason"] in ("VERIFY_SIGNATURE", "VERIFY_RECORD")
    paths["receipt"].write_text(json.dumps(receipt))

    doc = json.loads(bundle)
    rec = doc["closure"]["record"]
    root = bytes.fromhex(proof["payload"]["closure"]["record"])
    at = rec.index(record.decode(root)[0][record.K_MERKLE].hex())
    doc["closure"]["record"] = flipped(rec, at + 4)
    paths["closure"].write_text(json.dumps(doc))
    done = run_verify(*args)
    assert done.returncode == 1 and json.loads(done.stdout)["reason"] == "VERIFY_SIGNATURE"


def test_monthly_and_yearly_totals_are_the_sums_of_their_closures(stack):
    seal_some(stack, "month", 2)
    assert post_report(stack, {"type": "Z"})[0] == 201
    zs = _reports(stack, "Z")
    month = zs[0]["period"][:7]
    status, m = post_report(stack, {"type": "M", "period": month})
    assert status == 201, m
    ms = m["payload"]["summary"]
    days = [z["summary"] for z in zs if z["period"].startswith(month)]
    want = {}
    for day in days:
        for cur, groups in figures_of(day).items():
            for code, cell in groups.items():
                acc = want.setdefault(cur, {}).setdefault(code, [0, 0, 0, 0])
                for i in range(4):
                    acc[i] += cell[i]
    assert figures_of(ms) == want
    newest = max(days, key=lambda d: d["records"]["last_seq"])
    assert [c["perpetual_total_minor"] for c in ms["currencies"]] == \
        [c["perpetual_total_minor"] for c in newest["currencies"]]
    status, y = post_report(stack, {"type": "Y", "period": month[:4]})
    assert status == 201, y
    assert figures_of(y["payload"]["summary"]) == want
    status, again = post_report(stack, {"type": "M", "period": month})
    assert status == 409 and again["code"] == "REPORT_REFUSED" and again["device_code"] == "CLOSE_PERIOD"
    assert stack.receiver.wait_for(lambda d: {json.loads(b)["type"] for _, b, _ in d} >= {"Z", "M", "Y", "X"})


def test_report_requests_are_checked_and_idempotent(stack):
    for doc, field in (({"type": "Q"}, "type"), ({"type": "M"}, "period"), ({"type": "Z", "period": "2026-13-01"},
                       "period"), ({"type": "X", "period": "2026-01-01"}, "period"), ({"type": "Z", "extra": 1},
                       "extra"), ({"type": "A", "period": "26"}, "period")):
        status, answer = post_report(stack, doc)
        assert status == 400 and answer["field"] == field, (doc, answer)
    status, answer = post_report(stack, {"type": "Z", "period": "2099-01-01"})
    assert status == 409 and answer["device_code"] == "CLOSE_PERIOD"
    before = len(_reports(stack, "X"))
    status, one = post_report(stack, {"type": "X"}, key="x-once")
    status2, two = post_report(stack, {"type": "X"}, key="x-once")
    assert (status, status2) == (201, 200) and one["payload"]["report_id"] == two["payload"]["report_id"]
    assert len(_reports(stack, "X")) == before + 1
    status, got = stack.pos.get("/api/v1/reports/%s" % one["payload"]["report_id"])
    assert status == 200 and got["payload"]["ledger_hash"] == one["payload"]["ledger_hash"]
    assert stack.pos.get("/api/v1/reports/nope")[0] == 404


def test_audit_report_and_the_technical_log(stack, tmp_path):
    seal_some(stack, "audit", 1)
    status, a = post_report(stack, {"type": "A", "period": _today(stack)})
    assert status == 201, a
    _, _, data = request(stack.socket, "GET", a["payload"]["download_url"])
    path = tmp_path / "a.json"
    path.write_bytes(data)
    done = run_verify(str(path), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["last_hash"] == a["payload"]["ledger_hash"]
    status, log = stack.pos.get("/api/v1/events")
    assert status == 200
    names = [e["event"] for e in log["payload"]]
    assert "power_up" in names and "clock_set" in names and "closure_Z" in names and "profile" in names
    # each Z is archived by the daemon (issue 10): the device's checkpoint names the Z it archived up to
    archived = [e for e in log["payload"] if e["event"] == "archived"]
    z_seqs = {r["closure_seq"] for r in _reports(stack, "Z")}
    assert archived and {e["detail"]["archived_seq"] for e in archived} <= z_seqs, (archived, z_seqs)
    assert [e["seq"] for e in log["payload"]] == sorted(e["seq"] for e in log["payload"])
    status, none = stack.pos.get("/api/v1/events?from=2099-01-01")
    assert status == 200 and none["payload"] == []
    assert stack.pos.get("/api/v1/events?from=yesterday")[0] == 400


def _today(stack):
    status, st = stack.pos.get("/api/v1/outlets/local/status")
    return st["payload"]["closures"]["last_z"]["period"]


def test_the_sdk_generates_lists_and_gets_reports(stack):
    from hostd.sdk import errors
    from hostd.sdk.client import Client

    client = Client(socket=stack.socket)
    made = client.reports.generate("X", idempotency_key="sdk-x")
    assert client.reports.generate("X", idempotency_key="sdk-x")["report_id"] == made["report_id"]
    assert client.reports.get(made["report_id"])["ledger_hash"] == made["ledger_hash"]
    assert made["report_id"] in [r["report_id"] for r in client.reports.list("X")]
    with pytest.raises(errors.ReportRefused) as info:
        client.reports.generate("Z", period="2099-01-01")
    assert info.value.device_code == "CLOSE_PERIOD"


def test_the_status_page_lists_the_last_closures(stack):
    zs = _reports(stack, "Z")
    assert zs
    status, _, page = request(stack.socket, "GET", "/")
    assert status == 200
    text = page.decode()
    assert 'id="closures"' in text and 'data-report="%s"' % zs[0]["report_id"] in text
    assert zs[0]["download_url"] in text and 'id="sync">Sync: off' in text
