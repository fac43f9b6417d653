"""Issue 11, the host side of credit notes, end to end: the real emulator process, the real daemon
on a unix socket, HTTP (and the SDK) over it. Void in full and by adjustments, refunds split pro
rata (checked against Fractions and the device's tax rule computed here), a credit type sent to
POST /api/v1/invoices, GET of an original with its credits and balance, the credit note's
receipt; every refusal with its own code and nothing written, on live originals and on originals
archived and erased from the device; Idempotency-Key replays; a daemon killed between EVIDENCE
and SEAL (with the device power-cycled, so its armed evidence is gone) and after the SEAL went
out; a restarted daemon and a lost store."""

import json
import os
import re
import signal
import sqlite3
from fractions import Fraction

import pytest

from hostd.books.export import load_export, verify_export
from hostd.sdk import errors as sdk_errors
from hostd.sdk.builders import InvoiceBuilder
from hostd.sdk.client import Client
from hostd.sdk.transport import request
from protocol import record
from tests.daemonkit import Stack, utc_now
from tests.test_refund_split import shares, tax

pytestmark = pytest.mark.slow

LINES = (("CONS-001", 2, "500.00", "TG03", "Consulting hours", "hour"),
         ("SKU-9", 3, "33.33", "TG02", "Cable", "m"),
         ("BOOK-1", 1, "12.00", "TG01", "Book", "EA"))
EXPORT_LINE = [("SHIP-1", 1, "1.00", "TG05")]
RATES = {"TG01": 0, "TG02": 160000, "TG03": 160000, "TG05": 0}
AUTHORED = utc_now()   # one time for the run: the same document is the same bytes, so a retry is a retry


def invoice_doc(cashier, currency="CDF", itype="sale", lines=LINES, credit=None):
    b = InvoiceBuilder("123456789", "OUTLET-42", "POS-CR", cashier, currency=currency, invoice_type=itype,
                       timestamp=AUTHORED)
    b.client("Acme Ltd", "A-1", "Company")
    for line in lines:
        b.item(*line)
    b.pay("mobile_money", instrument_id="AIRTEL-001")
    if credit is not None:
        b.credit(credit, "returned")
    return b.build()


def cents(text):
    whole, _, part = text.partition(".")
    return int(whole) * 100 + int((part + "00")[:2])


class Till:
    """What a POS does with credit notes, over the stack's socket."""

    def __init__(self, stack):
        self.stack = stack

    def post(self, path, doc, key):
        status, data = self.stack.pos.post(path, json.dumps(doc).encode(), key=key)
        return status, json.loads(data), data

    def sale(self, cashier, **kw):
        status, doc, _ = self.post("/api/v1/invoices", invoice_doc(cashier, **kw), "sale-" + cashier)
        assert status == 200, doc
        return doc["payload"]

    def void(self, number, key, reason="returned", adjustments=None):
        body = {"reason": reason}
        if adjustments is not None:
            body["adjustments"] = adjustments
        return self.post("/api/v1/invoices/%s/void" % number, body, key)

    def refund(self, number, key, amount, currency="CDF", reference="AIRTEL-RF"):
        return self.post("/api/v1/invoices/%s/refund" % number, {"amount": amount, "currency": currency,
                                                                  "payment_reference": reference,
                                                                  "reason": "goodwill"}, key)

    def get(self, number):
        status, doc = self.stack.pos.get("/api/v1/invoices/%s" % number)
        assert status == 200, doc
        return doc["payload"]

    def written(self):
        """What a refusal must leave as it was: the device's counter and journal, the store's
        invoices and request rows."""
        _, st = self.stack.pos.get("/api/v1/outlets/local/status")
        conn = sqlite3.connect(self.stack.db)
        try:
            counts = [conn.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0] for t in ("invoices", "requests",
                                                                                           "credits")]
        finally:
            conn.close()
        return st["payload"]["counter"], st["payload"]["records"], counts


def remaining_of(view):
    return [[g["code"], cents(g["base_amount"]), cents(g["tax_amount"])] for g in view["balance"]["tax_groups"]]


def check_refund(credit_note, amount, remaining):
    """The refund's credit note against an independent computation: it totals the amount, each
    group's tax is the device's rule on its base, no group passes what remained, and each group's
    total is its largest-remainder share of the amount (Fractions) to within a few minor units."""
    doc = credit_note["invoice"]
    groups = [(t["code"], cents(t["base_amount"]), cents(t["tax_amount"])) for t in doc["tax_groups"]]
    assert cents(doc["totals"]["total"]) == amount == sum(b + t for _, b, t in groups)
    assert [cents(p["amount"]) for p in doc["payments"]] == [amount]
    left = dict((c, (b, t)) for c, b, t in remaining)
    share = dict(zip([g[0] for g in remaining], shares(amount, [b + t for _, b, t in remaining])))
    for code, base, t in groups:
        assert t == tax(base, RATES[code]) and base <= left[code][0] and t <= left[code][1]
        assert abs(base + t - share[code]) <= 7
    return groups


def export_summary(stack):
    status, _, data = request(stack.socket, "GET", "/api/v1/audit/export", timeout=120)
    assert status == 200, data
    return verify_export(load_export(data))     # the verifier checks every credit against its original


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    s.start_daemon()
    yield s
    s.close()


def test_void_refund_and_the_original_balance(stack):
    till = Till(stack)
    sale = till.sale("full")
    number = sale["fiscal_number"]
    original = till.get(number)
    assert original["credits"] == [] and original["balance"]["total"] == original["invoice"]["totals"]["total"]

    # a partial void: one of the two consulting hours, and the book
    status, doc, _ = till.void(number, "v-part", adjustments=[{"code": "CONS-001", "quantity": "1"},
                                                               {"line": 0, "quantity": 1}])
    assert status == 200, doc
    part = till.get(doc["payload"]["fiscal_number"])
    assert part["invoice"]["invoice_type"] == "credit_note"
    assert part["invoice"]["credit"] == {"original_fiscal_number": number, "reason": "returned"}
    assert [(i["code"], i["quantity"]) for i in part["invoice"]["items"]] == [("CONS-001", "1"), ("BOOK-1", "1")]
    assert part["invoice"]["client"] == original["invoice"]["client"]
    signed = record.decode(bytes.fromhex(part["signed_record"] + part["signature"]))[0]
    assert signed[record.K_ORIGINAL] == sale["counter"]              # the device signed the reference

    # a refund split pro rata of what remains, checked here independently
    left = remaining_of(till.get(number))
    assert left == [["TG01", 0, 0], ["TG02", 9999, 1600], ["TG03", 50000, 8000]]
    status, doc, _ = till.refund(number, "r-1", "123.45")
    assert status == 200, doc
    check_refund(till.get(doc["payload"]["fiscal_number"]), 12345, left)

    # a credit type sent to POST /api/v1/invoices names the original in `credit`
    status, doc, _ = till.post("/api/v1/invoices", invoice_doc("pos-credit", itype="credit_note",
                                                               lines=[("SKU-9", 1, "33.33", "TG02")], credit=number),
                               "pos-credit")
    assert status == 200, doc
    view = till.get(number)
    assert [c["fiscal_number"] for c in view["credits"]] == [
        "%s-%08d" % (sale["fiscal_authority_id"], n) for n in (2, 3, 4)]
    credited = sum(cents(c["total"]) for c in view["credits"])
    assert cents(view["balance"]["credited"]) == credited
    assert cents(view["balance"]["total"]) == cents(original["balance"]["total"]) - credited

    # the rest, exactly: refund all a refund can still take (a cent of tax may stay, README)
    left, rest = remaining_of(view), view["balance"]["refundable"]
    status, doc, _ = till.refund(number, "r-over", "%.2f" % ((cents(rest) + 1) / 100))
    assert (status, doc["code"]) == (422, "CREDIT_EXCEEDS_BALANCE")
    status, doc, _ = till.refund(number, "r-all", rest)
    assert status == 200, doc
    check_refund(till.get(doc["payload"]["fiscal_number"]), cents(rest), left)
    after = till.get(number)["balance"]
    assert after["refundable"] == "0.00" and cents(after["total"]) == cents(view["balance"]["total"]) - cents(rest)

    # the credit note's receipt names its original
    status, _, text = request(stack.socket, "GET", "/api/v1/invoices/%s/receipt?format=txt&columns=32"
                              % doc["payload"]["fiscal_number"])
    assert status == 200 and b"CREDIT NOTE" in text and re.search(rb"\nCredits +" + number.encode() + rb"\n", text)
    assert max(len(line) for line in text.decode().splitlines()) <= 32

    # a full void of a fresh sale; the two-phase path takes no credit types
    other = till.sale("other")
    status, doc, _ = till.void(other["fiscal_number"], "v-full")
    assert status == 200 and till.get(other["fiscal_number"])["balance"]["total"] == "0.00"
    status, doc, _ = till.post("/api/v1/invoices/prepare", invoice_doc("tp", itype="credit_note", credit=number), "tp")
    assert status == 400 and doc["field"] == "invoice_type"
    summary = export_summary(stack)
    assert summary["invoices"] == 7


def seq_of(sealed):
    return record.decode(bytes.fromhex(sealed["signed_record"] + sealed["signature"]))[0][record.K_SEQ]


def archive_past(stack, till, seq):
    """Seal sales in batches until the device has archived and erased the sector of record ``seq``."""
    for round_ in range(6):
        items = [{"idempotency_key": "fill-%d-%d" % (round_, i), "invoice": invoice_doc("fill-%d-%d" % (round_, i),
                                                                                       lines=LINES[:1])}
                 for i in range(40)]
        status, data = stack.pos.post("/api/v1/invoices/batch", json.dumps({"invoices": items}).encode(),
                                      timeout=300)
        assert status == 200, data
        _, st = stack.pos.get("/api/v1/outlets/local/status")
        if st["payload"]["first_live"] > seq:
            return
    raise AssertionError("the device never erased record %d: %s" % (seq, st["payload"]))


@pytest.mark.parametrize("archived", [False, True], ids=["live", "archived"])
def test_every_refusal_has_its_own_code_and_writes_nothing(tmp_path, archived):
    stack = Stack(tmp_path, journal_kib=32 if archived else None)
    try:
        stack.start_daemon()
        till = Till(stack)
        a, b = till.sale("a"), till.sale("b")
        a_total = till.get(a["fiscal_number"])["balance"]["total"]
        status, part, _ = till.refund(a["fiscal_number"], "r-a", "100.00")
        assert status == 200, part
        status, void_b, _ = till.void(b["fiscal_number"], "v-b")
        assert status == 200, void_b
        export = till.sale("export", itype="export", lines=[("SHIP-1", 1, "90.00", "TG05")])
        if archived:
            archive_past(stack, till, seq_of(void_b["payload"]))   # originals and their credits erased
        before = till.written()
        unknown = "%s-%08d" % (a["fiscal_authority_id"], 99999999)
        over = "%.2f" % ((cents(till.get(a["fiscal_number"])["balance"]["refundable"]) + 1) / 100)
        cases = [
            (lambda: till.void(void_b["payload"]["fiscal_number"], "x-1"), "ORIGINAL_IS_CREDIT", 422, "fiscal_number"),
            (lambda: till.void(b["fiscal_number"], "x-2"), "ORIGINAL_SETTLED", 409, "fiscal_number"),
            (lambda: till.refund(b["fiscal_number"], "x-3", "1.00"), "ORIGINAL_SETTLED", 409, "fiscal_number"),
            (lambda: till.refund(a["fiscal_number"], "x-4", over), "CREDIT_EXCEEDS_BALANCE", 422, "amount"),
            (lambda: till.void(a["fiscal_number"], "x-5"), "CREDIT_EXCEEDS_BALANCE", 422, "adjustments"),
            (lambda: till.refund(a["fiscal_number"], "x-6", "1.00", currency="USD"), "CREDIT_CURRENCY_MISMATCH", 422,
             "currency"),
            (lambda: till.post("/api/v1/invoices", invoice_doc("x-7", currency="USD", itype="credit_note",
                                                               credit=a["fiscal_number"]), "x-7"),
             "CREDIT_CURRENCY_MISMATCH", 422, "totals.currency"),
            (lambda: till.void(unknown, "x-8"), "ORIGINAL_NOT_FOUND", 404, "fiscal_number"),
            (lambda: till.refund(unknown, "x-9", "1.00"), "ORIGINAL_NOT_FOUND", 404, "fiscal_number"),
            (lambda: till.post("/api/v1/invoices", invoice_doc("x-10", itype="credit_note", credit=unknown), "x-10"),
             "ORIGINAL_NOT_FOUND", 404, "credit.original_fiscal_number"),
            (lambda: till.post("/api/v1/invoices", invoice_doc("x-11", itype="export_credit", lines=EXPORT_LINE,
                                                               credit=a["fiscal_number"]), "x-11"),
             "CREDIT_KIND_MISMATCH", 422, "invoice_type"),
            (lambda: till.post("/api/v1/invoices", invoice_doc("x-12", itype="credit_note", lines=EXPORT_LINE,
                                                               credit=export["fiscal_number"]), "x-12"),
             "CREDIT_KIND_MISMATCH", 422, "invoice_type"),
        ]
        for send, code, http, field in cases:
            status, doc, _ = send()
            assert (status, doc["code"], doc.get("field")) == (http, code, field), doc
            assert till.written() == before, code                 # nothing stored, nothing sealed
        assert {c[1] for c in cases} == {"ORIGINAL_IS_CREDIT", "ORIGINAL_SETTLED", "CREDIT_EXCEEDS_BALANCE",
                                         "CREDIT_CURRENCY_MISMATCH", "ORIGINAL_NOT_FOUND", "CREDIT_KIND_MISMATCH"}
        # a refused key is not used up: the same key with a valid body seals; what is left still credits
        balance = till.get(a["fiscal_number"])["balance"]
        assert cents(balance["total"]) == cents(a_total) - 10000
        status, doc, _ = till.refund(a["fiscal_number"], "x-4", balance["refundable"])
        assert status == 200, doc
        assert till.get(a["fiscal_number"])["balance"]["refundable"] == "0.00"
        status, doc, _ = till.void(export["fiscal_number"], "v-export")
        assert status == 200 and till.get(doc["payload"]["fiscal_number"])["invoice"]["invoice_type"] == "export_credit"
        assert export_summary(stack)["counter"] == doc["payload"]["counter"]
    finally:
        stack.close()


def test_retries_replay_byte_for_byte_and_another_body_is_key_reuse(stack):
    till = Till(stack)
    sale = till.sale("replay")
    number = sale["fiscal_number"]
    first = till.refund(number, "r-same", "10.00")
    assert first[0] == 200
    assert till.refund(number, "r-same", "10.00")[2] == first[2]          # byte-identical
    status, doc, _ = till.refund(number, "r-same", "11.00")
    assert (status, doc["code"], doc["field"]) == (422, "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key")
    full = till.void(number, "v-same", adjustments=[{"code": "CONS-001", "quantity": "1"}])
    assert full[0] == 200, full[1]
    status, doc, _ = till.void(number, "v-same")                          # same key, another body
    assert (status, doc["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    # once the original is settled, a retry of a sealed credit still replays (no EVIDENCE, no refusal)
    rest = till.get(number)["balance"]["refundable"]
    status, doc, _ = till.refund(number, "r-rest", rest)
    assert status == 200, doc
    assert till.void(number, "v-same", adjustments=[{"code": "CONS-001", "quantity": "1"}])[2] == full[2]
    assert till.refund(number, "r-same", "10.00")[2] == first[2]
    # the same key and body against another original is another request
    other = till.sale("replay-2")
    status, doc, _ = till.refund(other["fiscal_number"], "r-same", "10.00")
    assert (status, doc["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert len(till.get(number)["credits"]) == 3


def test_a_daemon_killed_between_evidence_and_seal_or_after_the_seal_went_out(stack):
    till = Till(stack)
    sale = till.sale("crash")
    number = sale["fiscal_number"]
    total = cents(till.get(number)["balance"]["total"])
    answers = []
    for crash_at, key, amount in (("after_credit_armed", "r-crash-1", "100.00"),
                                  ("after_commit_sent", "r-crash-2", "50.00"),
                                  ("after_commit_answered", "r-crash-3", "25.00")):
        stack.stop_daemon()
        stack.start_daemon(crash_at=crash_at)
        with pytest.raises(Exception):
            till.refund(number, key, amount)                  # the daemon dies under this request
        assert stack.daemon.wait(10) == -signal.SIGKILL
        if crash_at == "after_credit_armed":
            stack.restart_emulator(seed=21)                   # a power cycle: the armed evidence is gone
        stack.start_daemon()
        status, doc, data = till.refund(number, key, amount)
        assert status == 200, doc
        assert till.refund(number, key, amount)[2] == data    # and byte for byte again
        answers.append(doc["payload"]["fiscal_number"])
    view = till.get(number)
    assert [c["fiscal_number"] for c in view["credits"]] == answers   # each sealed exactly once
    assert cents(view["balance"]["total"]) == total - 17500
    assert export_summary(stack)["invoices"] == 4


def test_a_restarted_daemon_and_a_lost_store_credit_correctly(stack):
    till = Till(stack)
    body = invoice_doc("lost")
    status, sale, _ = till.post("/api/v1/invoices", body, "sale-lost")
    number = sale["payload"]["fiscal_number"]
    first = till.refund(number, "r-l1", "100.00")
    assert first[0] == 200
    stack.kill_daemon()
    stack.start_daemon()                                      # the books come back from the store
    assert till.refund(number, "r-l2", "50.00")[0] == 200
    assert cents(till.get(number)["balance"]["credited"]) == 15000
    stack.stop_daemon()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(stack.db + suffix):
            os.unlink(stack.db + suffix)
    stack.start_daemon()                                      # a store rebuilt from the journal alone
    assert till.refund(number, "r-l1", "100.00")[2] == first[2]       # the retry replays from the device
    status, doc, _ = till.refund(number, "r-l3", "10.00")
    assert (status, doc["code"]) == (409, "ORIGINAL_CONTENT_MISSING")  # the original's lines are unknown
    assert till.post("/api/v1/invoices", body, "sale-lost")[0] == 200   # its retry brings them back
    view = till.get(number)
    assert cents(view["balance"]["credited"]) == 15000 and len(view["credits"]) == 2
    status, doc, _ = till.refund(number, "r-l3", "10.00")
    assert status == 200, doc
    status, doc, _ = till.refund(number, "r-l4", view["balance"]["refundable"])
    assert (status, doc["code"]) == (422, "CREDIT_EXCEEDS_BALANCE")     # 10.00 went since
    rest = till.get(number)["balance"]["refundable"]
    assert cents(rest) in range(cents(view["balance"]["refundable"]) - 1002, cents(view["balance"]["refundable"]) - 997)
    status, doc, _ = till.refund(number, "r-l4", rest)
    assert status == 200, doc
    assert till.get(number)["balance"]["refundable"] == "0.00"
    assert export_summary(stack)["invoices"] == 5


def test_a_store_lost_after_its_credits_were_erased_seals_no_credit_it_cannot_prove(tmp_path):
    stack = Stack(tmp_path, journal_kib=32)
    try:
        stack.start_daemon()
        till = Till(stack)
        a = till.sale("erased")
        status, doc, _ = till.refund(a["fiscal_number"], "r-e", "10.00")
        assert status == 200
        archive_past(stack, till, seq_of(doc["payload"]))
        body = invoice_doc("live")
        status, live, _ = till.post("/api/v1/invoices", body, "sale-live")
        stack.stop_daemon()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(stack.db + suffix):
                os.unlink(stack.db + suffix)
        stack.start_daemon()
        assert till.post("/api/v1/invoices", body, "sale-live")[0] == 200   # content back
        before = till.written()
        status, doc, _ = till.refund(live["payload"]["fiscal_number"], "r-live", "10.00")
        assert (status, doc["code"], doc["device_code"]) == (409, "CREDIT_BOOKS_INCOMPLETE", "CREDIT_EVIDENCE_STALE")
        status, doc, _ = till.void(a["fiscal_number"], "v-erased")
        assert (status, doc["code"]) == (404, "ORIGINAL_NOT_FOUND")          # erased, and the store lost it
        assert till.written() == before
    finally:
        stack.close()


def test_the_sdk_voids_and_refunds_with_typed_errors(stack):
    client = Client(socket=stack.socket)
    sale = client.invoices.create(invoice_doc("sdk"), idempotency_key="sdk-sale")
    number = sale["fiscal_number"]
    part = client.invoices.void(number, "one hour back", [{"code": "CONS-001", "quantity": "1"}],
                                idempotency_key="sdk-v1")
    assert part["fiscal_number"] != number and part["auth_code"]
    refund = client.invoices.refund(number, "20.00", "CDF", "MOMO-RF-1", "goodwill", idempotency_key="sdk-r1")
    assert client.invoices.refund(number, "20.00", "CDF", "MOMO-RF-1", "goodwill", idempotency_key="sdk-r1") == refund
    got = client.invoices.get(number)
    assert [c["fiscal_number"] for c in got["credits"]] == [part["fiscal_number"], refund["fiscal_number"]]
    with pytest.raises(sdk_errors.CreditExceedsBalance) as info:
        client.invoices.refund(number, "100000.00", "CDF", "X")
    assert info.value.field == "amount" and info.value.device_code == "CREDIT_EXCEEDS"
    with pytest.raises(sdk_errors.CreditCurrencyMismatch):
        client.invoices.refund(number, "1.00", "USD", "X")
    with pytest.raises(sdk_errors.RefundAmountUnreachable) as info:
        client.invoices.refund(client.invoices.create(invoice_doc("sdk-2", lines=LINES[:1]))["fiscal_number"],
                               "0.04", "CDF", "X")
    assert "0.03 or 0.05" in info.value.detail
    with pytest.raises(sdk_errors.OriginalIsCredit):
        client.invoices.void(part["fiscal_number"], "no")
    with pytest.raises(sdk_errors.OriginalNotFound):
        client.invoices.void("NOPE-00000001", "no")
    with pytest.raises(ValueError):
        client.invoices.refund(number, 1.5, "CDF", "X")        # a float is never an amount
    client.invoices.refund(number, got["balance"]["refundable"], "CDF", "X", idempotency_key="sdk-rest")
    assert Fraction(client.invoices.get(number)["balance"]["refundable"]) == 0
    whole = client.invoices.create(invoice_doc("sdk-3"))["fiscal_number"]
    client.invoices.void(whole, "all of it")
    with pytest.raises(sdk_errors.OriginalSettled):
        client.invoices.void(whole, "again")


def test_malformed_void_and_refund_bodies_are_400s_naming_the_field(stack):
    till = Till(stack)
    number = till.sale("bodies")["fiscal_number"]
    before = till.written()
    void = "/api/v1/invoices/%s/void" % number
    refund = "/api/v1/invoices/%s/refund" % number
    cases = [
        (void, b"[]", "body"), (void, b"{}", "reason"), (void, b'{"reason": ""}', "reason"),
        (void, b'{"reason": 7}', "reason"), (void, b'{"reason": "x", "why": 1}', "why"),
        (void, b'{"reason": "x", "adjustments": {}}', "adjustments"),
        (void, b'{"reason": "x", "adjustments": [7]}', "adjustments[0]"),
        (void, b'{"reason": "x", "adjustments": [{"code": "CONS-001"}]}', "adjustments[0].quantity"),
        (void, b'{"reason": "x", "adjustments": [{"quantity": 1}]}', "adjustments[0].code"),
        (void, b'{"reason": "x", "adjustments": [{"code": "NOPE", "quantity": 1}]}', "adjustments[0].code"),
        (void, b'{"reason": "x", "adjustments": [{"line": true, "quantity": 1}]}', "adjustments[0].line"),
        (void, b'{"reason": "x", "adjustments": [{"line": 9, "quantity": 1}]}', "adjustments[0].line"),
        (void, b'{"reason": "x", "adjustments": [{"code": "CONS-001", "quantity": "0.0001"}]}',
         "adjustments[0].quantity"),
        (void, b'{"reason": "x", "adjustments": [{"code": "CONS-001", "quantity": 0}]}', "adjustments[0].quantity"),
        (void, b'{"reason": "x", "adjustments": [{"code": "CONS-001", "quantity": 1}, {"line": 2, "quantity": 1}]}',
         "adjustments[1]"),
        (void, ('{"reason": "%s"}' % ("r" * 300)).encode(), "reason"),
        (refund, b'{"currency": "CDF", "payment_reference": ""}', "amount"),
        (refund, b'{"amount": "1.00", "payment_reference": ""}', "currency"),
        (refund, b'{"amount": "1.00", "currency": "EUR", "payment_reference": ""}', "currency"),
        (refund, b'{"amount": "1.001", "currency": "CDF", "payment_reference": ""}', "amount"),
        (refund, b'{"amount": true, "currency": "CDF", "payment_reference": ""}', "amount"),
        (refund, b'{"amount": "0", "currency": "CDF", "payment_reference": ""}', "amount"),
        (refund, b'{"amount": "1e999999", "currency": "CDF", "payment_reference": ""}', "amount"),
        (refund, b'{"amount": "1.00", "currency": "CDF"}', "payment_reference"),
        (refund, b'{"amount": "1.00", "currency": "CDF", "payment_reference": 5}', "payment_reference"),
    ]
    for path, body, field in cases:
        status, data = stack.pos.post(path, body)
        doc = json.loads(data)
        assert (status, doc["code"], doc.get("field")) == (400, "INVALID_CANONICAL_PAYLOAD", field), (body, doc)
    assert till.written() == before


def test_a_token_credits_only_the_invoices_of_its_outlets(tmp_path):
    stack = Stack(tmp_path)
    tokens = tmp_path / "tokens"
    tokens.write_text("till-42-token-0000 OUTLET-42\ntill-9-token-00000 OUTLET-9\n")
    try:
        stack.start_daemon(extra=["--tokens-file", str(tokens)])
        own, other = {"Authorization": "Bearer till-42-token-0000"}, {"Authorization": "Bearer till-9-token-00000"}

        def post(path, doc, headers, key):
            status, data = stack.pos.post(path, json.dumps(doc).encode(), key=key, headers=headers)
            return status, json.loads(data)
        status, sale = post("/api/v1/invoices", invoice_doc("scoped"), own, "scoped-sale")
        assert status == 200, sale
        number = sale["payload"]["fiscal_number"]
        status, doc = post("/api/v1/invoices/%s/void" % number, {"reason": "x"}, other, "scoped-v")
        assert (status, doc["code"]) == (403, "FORBIDDEN"), doc
        note = invoice_doc("scoped-credit", itype="credit_note", lines=LINES[:1], credit=number)
        note["outlet_id"] = "OUTLET-9"                    # its own outlet is the token's; the original's is not
        status, doc = post("/api/v1/invoices", note, other, "scoped-c")
        assert (status, doc["code"]) == (403, "FORBIDDEN"), doc
        status, doc = post("/api/v1/invoices/%s/refund" % number, {"amount": "1.00", "currency": "CDF",
                                                                    "payment_reference": ""}, own, "scoped-r")
        assert status == 200, doc
    finally:
        stack.close()
