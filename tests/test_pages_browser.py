"""Issue 14: the status page and a receipt, loaded in real headless Chromium from the daemon's
localhost listener. The rendered DOM is checked (the counter matches /status, the fill gauge is
there, the page's own script ran and refreshed), the receipt's QR is decoded from a screenshot
of the page as Chromium drew it, and both screenshots are saved in test-artifacts/."""

import json
import os
import socket
from html.parser import HTMLParser

import pytest
import zxingcpp
from PIL import Image

from hostd.sdk.transport import request
from hostd.store.store import Store
from tests import browser
from tests.daemonkit import Stack, sample

pytestmark = pytest.mark.slow
TOKEN = "browser-token-0123456789"


class Dom(HTMLParser):
    """Element texts and attributes by id, from a DOM dump."""

    def __init__(self, text):
        HTMLParser.__init__(self)
        self.attrs, self.text, self.stack = {}, {}, []
        self.body = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        if "id" in attrs:
            self.attrs[attrs["id"]] = attrs
            self.text.setdefault(attrs["id"], "")
        self.stack.append(attrs.get("id"))

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()

    def handle_data(self, data):
        for ident in self.stack:
            if ident:
                self.text[ident] = self.text.get(ident, "") + data


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    tokens = tmp / "tokens"
    tokens.write_text("%s *\n" % TOKEN)
    port = free_port()
    stack = Stack(tmp)
    stack.start_daemon(extra=["--tokens-file", str(tokens), "--listen", "127.0.0.1:%d" % port])
    sealed = []
    headers = {"Authorization": "Bearer " + TOKEN}
    for i in range(3):   # the samples carry no timestamp: the daemon dates them now
        status, data = stack.pos.post("/api/v1/invoices", sample(cashier_id="browser-%d" % i), key="b-%d" % i,
                                      headers=headers)
        assert status == 200, data
        sealed.append(json.loads(data)["payload"])
    yield stack, "http://127.0.0.1:%d" % port, sealed
    stack.close()


def test_the_status_page_renders_the_device_and_its_invoices(served):
    stack, base, sealed = served
    code, _, body = request(base, "GET", "/api/v1/outlets/local/status", headers={"Authorization": "Bearer " + TOKEN})
    assert code == 200
    live = json.loads(body)["payload"]
    dom = Dom(browser.dump_dom("%s/?token=%s" % (base, TOKEN)))
    assert dom.text["counter"].strip() == str(live["counter"]) == "3"
    assert dom.text["device-id"].strip() == live["device_id"]
    assert "fill" in dom.attrs and float(dom.attrs["fill"]["value"]) >= 0
    assert dom.body.get("data-refreshed") == "1", dom.body              # the page's script fetched /status
    page = browser.dump_dom("%s/?token=%s" % (base, TOKEN))
    for payload in sealed:
        assert payload["fiscal_number"] in page
    assert page.count('class="badge yellow"') == 3                      # queued: not synced yet
    assert page.count('class="bar"') == 30 and 'data-total="0"' in page
    path = browser.screenshot("%s/?token=%s" % (base, TOKEN), "status-page.png", height=780)
    assert os.path.getsize(path) > 10000


def test_each_sync_state_gets_the_seeds_badge(served):
    """Seed 002's dashboard: green Real-time (synced), yellow Queued, red Retry (failed). The
    states are set in the store here (tests/test_sync.py drives them through a real authority);
    what is checked is the page Chromium draws from them."""
    stack, base, sealed = served
    store = Store(stack.db)
    states = {sealed[0]["counter"]: "synced", sealed[1]["counter"]: "failed"}
    try:
        for counter, state in states.items():
            store.db.execute("UPDATE invoices SET dgi_status=? WHERE counter=?", (state, counter))
        page = browser.dump_dom("%s/?token=%s" % (base, TOKEN))
        for colour, status, label in (("green", "synced", "Real-time"), ("red", "failed", "Retry"),
                                      ("yellow", "queued", "Queued")):
            badge = '<span class="badge %s" data-status="%s">%s</span>' % (colour, status, label)
            assert page.count(badge) == 1, (badge, page)
    finally:
        store.db.execute("UPDATE invoices SET dgi_status='queued'")


def test_the_status_page_needs_the_token(served):
    _, base, _ = served
    dom = browser.dump_dom("%s/" % base)
    assert "UNAUTHORIZED" in dom and "device-id" not in dom


def test_the_receipt_renders_and_its_qr_scans_to_the_payload(served):
    _, base, sealed = served
    payload = sealed[0]
    url = "%s/api/v1/invoices/%s/receipt?format=html&width=80&token=%s" % (base, payload["fiscal_number"], TOKEN)
    dom = Dom(browser.dump_dom(url))
    assert dom.text["fiscal-number"].strip() == payload["fiscal_number"]
    assert dom.text["auth-code"].strip() == payload["auth_code"]
    assert dom.text["total"].strip() == "1160.00"
    assert dom.attrs["qr"]["data-payload"] == payload["qr_payload"]
    path = browser.screenshot(url, "receipt.png", width=420, height=540, scale=2)
    found = [r.text for r in zxingcpp.read_barcodes(Image.open(path))]
    assert found == [payload["qr_payload"]]                              # the QR as Chromium drew it
