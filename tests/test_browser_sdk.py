"""Issue 14 point 2: the browser SDK (hostd/sdk/browser/fiscal.mjs) tested with Node's own test
runner, against a real emulator and daemon on its TCP listener.

- the daemon serves the module at GET /sdk/fiscal.mjs without a token (the very bytes of the
  package file, text/javascript), revalidated by ETag, and refused to an origin not allowed;
- ``node --test tests/js/fiscal.unit.test.mjs``: a fake fetch (request shapes of every call,
  void/refund/reports included; the typed errors; the retry schedule and Retry-After; the
  Standard Webhooks vector; the builder's totals);
- ``node --test tests/js/fiscal.test.mjs`` in three phases against the daemon: ``live`` (seal,
  get, list, a void and a refund with their typed refusals, a 401 and a 400 as typed errors, a
  webhook delivery the daemon really sent, the served module), then with the daemon stopped ``offline`` (invoices queued in a file), then with it
  restarted ``restored`` (the queue flushed oldest first); this side then checks the daemon sealed
  each queued invoice exactly once and in order;
- headless Chromium: a page of another (allowed) origin imports the module from the daemon, seals
  through CORS, queues a sale in IndexedDB and flushes it through a second connection to it.

A node run passes when node exits 0 and every test of its phase passed (the TAP lines are read:
a skipped or missing test fails here); node's whole output is shown when it does not.
"""

import base64
import html
import http.client
import http.server
import json
import os
import re
import shutil
import subprocess
import threading

import pytest

from hostd.sdk.client import Client
from tests import browser
from tests.daemonkit import Stack, sample
from tests.test_tcp_listener import free_port
from tests.webhookkit import Receiver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(ROOT, "hostd", "sdk", "browser", "fiscal.mjs")
UNIT = os.path.join("tests", "js", "fiscal.unit.test.mjs")
LIVE = os.path.join("tests", "js", "fiscal.test.mjs")
TOKEN = "B" * 16 + "-browser-sdk"
ORIGIN = "http://pos.example:8080"
SECRET = "whsec_" + base64.b64encode(b"browser-sdk-webhook-secret-32b..").decode()
# node --test --test-reporter=tap: "ok 3 - name", "not ok 4 - name", "ok 5 - name # SKIP reason" (top level)
TAP = re.compile(r"^(ok|not ok) \d+ - (.*?)(?: # (SKIP|TODO)\b.*)?$")
PHASE_TESTS = {"unit": 14, "live": 6, "offline": 1, "restored": 1}   # tests each run must pass


def node_test(path, phase, **env):
    """Run one node test file; {test name: "pass" | "fail" | "skip"}; fails with node's output."""
    node = shutil.which("node")
    assert node, "node is missing (./dev setup installs it)"
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("FISCAL_")}
    run_env.update(env)
    done = subprocess.run([node, "--test", "--test-reporter=tap", path], cwd=ROOT, env=run_env, capture_output=True,
                          text=True, timeout=600)
    output = "node --test %s (phase %s) exited %d:\n%s\n%s" % (path, phase, done.returncode, done.stdout, done.stderr)
    results = {}
    for line in done.stdout.splitlines():
        found = TAP.match(line)
        if found:
            results[found.group(2)] = "skip" if found.group(3) else ("pass" if found.group(1) == "ok" else "fail")
    if done.returncode != 0:
        pytest.fail(output, pytrace=False)
    passed = sorted(name for name, verdict in results.items() if verdict == "pass")
    if len(passed) != PHASE_TESTS[phase] or "fail" in results.values():
        pytest.fail("expected %d passing tests in phase %s, got %s\n%s" % (PHASE_TESTS[phase], phase, passed, output),
                    pytrace=False)
    return results


class Served:
    def __init__(self, tmp, receiver):
        self.tmp = tmp
        self.stack = Stack(tmp)
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.pages = Pages()   # a web POS's own origin, for headless Chromium
        (tmp / "tokens").write_text("# the browser SDK's tests\n%s *\n" % TOKEN)
        self.extra = ["--tokens-file", str(tmp / "tokens"), "--listen", "127.0.0.1:%d" % self.port,
                      "--cors-origin", ORIGIN, "--cors-origin", self.pages.origin, "--webhook-retry", "0.1"]
        self.receiver = receiver
        self.stack.start_daemon(extra=self.extra)

    def env(self, phase, **more):
        return dict({"FISCAL_BASE_URL": self.base, "FISCAL_TOKEN": TOKEN, "FISCAL_PHASE": phase}, **more)

    def call(self, method, path, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def listing(self):
        status, _, data = self.call("GET", "/api/v1/invoices?per_page=200&sort=fiscal_number",
                                    {"Authorization": "Bearer " + TOKEN})
        assert status == 200, data
        return json.loads(data)["payload"]


class Pages:
    """A web POS's own origin (127.0.0.1 on another port), in a thread: serves the HTML it is given,
    and ``/hold`` and ``/done`` for a page that must finish before Chromium dumps it.

    IndexedDB work does not always complete under ``--virtual-time-budget``, so the page is dumped
    at its load event, without virtual time, and holds that event open with an image from
    ``/hold``, answered once the page has POSTed its result to ``/done`` (60 s at most)."""

    def __init__(self):
        self.html = {}
        self.done = threading.Event()
        self.result = None
        pages = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/hold":
                    pages.done.wait(60)
                    body = "released"
                else:
                    body = pages.html.get(self.path)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "not found").encode("utf-8"))

            def do_POST(self):
                pages.result = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8")
                pages.done.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    receiver = Receiver()
    served = Served(tmp_path_factory.mktemp("browser-sdk"), receiver)
    yield served
    served.stack.close()
    served.pages.close()
    receiver.close()


def test_node_unit_tests_with_a_fake_fetch():
    node_test(UNIT, "unit")


@pytest.mark.slow
def test_the_daemon_serves_the_module_without_a_token(served):
    status, headers, body = served.call("GET", "/sdk/fiscal.mjs")
    assert status == 200 and headers["Content-Type"] == "text/javascript; charset=utf-8"
    with open(MODULE, "rb") as fh:
        assert body == fh.read()
    assert headers["Cache-Control"] == "no-cache" and headers["X-Content-Type-Options"] == "nosniff"
    status, again, body = served.call("GET", "/sdk/fiscal.mjs", {"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b"" and again["ETag"] == headers["ETag"]
    # a page's <script type="module"> is fetched in CORS mode: its origin must be allowed
    status, headers, body = served.call("GET", "/sdk/fiscal.mjs", {"Origin": "http://evil.example"})
    assert status == 403 and json.loads(body)["field"] == "Origin"
    status, headers, _ = served.call("GET", "/sdk/fiscal.mjs", {"Origin": ORIGIN})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ORIGIN
    assert served.call("GET", "/api/v1/tax-groups")[0] == 401                 # only the module is public


@pytest.mark.slow
def test_node_against_the_daemon_seals_lists_and_surfaces_typed_errors(served):
    status, data = served.stack.pos.post("/api/v1/webhooks", json.dumps(
        {"url": served.receiver.url, "events": ["invoice.sealed"], "secret": SECRET}).encode(),
        headers={"Authorization": "Bearer " + TOKEN})
    assert status == 201, data
    # one invoice sealed by the Python SDK over TCP, so the daemon sends a real signed delivery
    sealed = Client(base_url=served.base, token=TOKEN).invoices.create(json.loads(sample(cashier_id="py-webhook")),
                                                                       idempotency_key="py-webhook")
    assert served.receiver.wait_for(lambda got: any(sealed["fiscal_number"].encode() in b for _, b, _ in got), 60)
    headers, body, _ = [d for d in served.receiver.deliveries if sealed["fiscal_number"].encode() in d[1]][0]
    delivery = {"secret": SECRET, "body": body.decode("utf-8"),
                "headers": {k: v for k, v in headers.items() if k.lower().startswith("webhook-")}}
    node_test(LIVE, "live", **served.env("live", FISCAL_WEBHOOK=json.dumps(delivery)))
    cashiers = [i["invoice"]["cashier_id"] for i in served.listing()]
    assert cashiers.count("js-live") == 1                                     # sealed, and its retry was the same seal
    assert "js-400" not in cashiers and "js-400b" not in cashiers


@pytest.mark.slow
def test_node_queues_while_the_daemon_is_stopped_and_flushes_after_its_restart(served):
    queue_file = str(served.tmp / "browser-queue.json")
    before = len(served.listing())
    served.stack.stop_daemon()
    try:
        node_test(LIVE, "offline", **served.env("offline", FISCAL_QUEUE_FILE=queue_file))
    finally:
        served.stack.start_daemon(extra=served.extra)
    with open(queue_file) as fh:
        drafts = json.load(fh)
    assert [d["status"] for d in drafts] == ["queued"] * 5 and not any("response" in d for d in drafts)
    node_test(LIVE, "restored", **served.env("restored", FISCAL_QUEUE_FILE=queue_file))
    listed = served.listing()
    assert len(listed) == before + 5
    queued = [i["invoice"]["cashier_id"] for i in listed if i["invoice"]["cashier_id"].startswith("js-off-")]
    assert queued == ["js-off-%d" % i for i in range(5)]                       # in order, each exactly once
    with open(queue_file) as fh:
        drafts = json.load(fh)
    assert [d["response"]["fiscal_number"] for d in drafts] == \
        [i["fiscal_number"] for i in listed if i["invoice"]["cashier_id"].startswith("js-off-")]


POS_PAGE = """<!doctype html>
<meta charset="utf-8"><title>a web POS</title>
<pre id="out">not run</pre>
<img src="/hold" alt="">
<script type="module">
const out = document.getElementById("out");
const log = {};
const step = (name) => { log.step = name; out.textContent = "not run: " + name; };
try {
  step("import");   // a dynamic import, so that a refused or broken module is reported here too
  const {Client, IndexedDBStorage, InvoiceBuilder, OfflineQueue, Unauthorized} = await import("%(base)s/sdk/fiscal.mjs");
  step("seal");
  const storage = new IndexedDBStorage({name: "pos-under-test"});
  const online = new Client({baseUrl: "%(base)s", token: "%(token)s", queue: new OfflineQueue({storage})});
  const rates = await online.taxGroups.rates();
  step("sale");
  const sale = (cashier) => new InvoiceBuilder({merchantNif: "308123456", outletId: "outlet-kin001",
    posTerminalId: "chromium-01", cashierId: cashier, rates})
    .item({code: "CONS-001", quantity: 2, unitPrice: "500.00", taxGroup: "TG03"});
  log.sealed = (await online.invoices.create(sale("chromium-0"), {idempotencyKey: "chromium-0"})).fiscal_number;
  step("queue");
  const away = new Client({baseUrl: "%(closed)s", token: "%(token)s", queue: new OfflineQueue({storage})});
  log.handle = await away.invoices.create(sale("chromium-1"), {idempotencyKey: "chromium-1"});
  step("flush");
  const later = new OfflineQueue({storage: new IndexedDBStorage({name: "pos-under-test"})});   // as after a reload
  new Client({baseUrl: "%(base)s", token: "%(token)s", queue: later});
  log.pending = (await later.pending()).map((d) => d.idempotencyKey);
  log.flushed = await later.flush();
  log.statuses = (await later.drafts()).map((d) => [d.idempotencyKey, d.status, d.response?.fiscal_number ?? null]);
  try { await new Client({baseUrl: "%(base)s", token: "W".repeat(20)}).taxGroups.list(); }
  catch (err) { log.unauthorized = [err instanceof Unauthorized, err.status, err.field]; }
  out.textContent = JSON.stringify(log);
} catch (err) {
  out.textContent = "FAILED " + err.name + ": " + err.message + " " + JSON.stringify(log);
}
await fetch("/done", {method: "POST", body: out.textContent});
</script>
"""


@pytest.mark.slow
def test_chromium_imports_the_module_from_the_daemon_and_queues_in_indexeddb(served):
    """A page of another origin (allowed with --cors-origin) imports /sdk/fiscal.mjs from the daemon
    as a module script, seals through CORS (a preflight for Authorization and Idempotency-Key),
    queues a sale for an unreachable daemon in IndexedDB, and flushes it from a new queue object."""
    served.pages.html["/pos.html"] = POS_PAGE % {"base": served.base, "token": TOKEN,
                                                  "closed": "http://127.0.0.1:%d" % free_port()}
    dom = browser.dump_dom(served.pages.origin + "/pos.html", budget_ms=None)
    text = html.unescape(re.search(r'<pre id="out">(.*?)</pre>', dom, re.S).group(1))
    assert text == served.pages.result, (text, served.pages.result)   # the page finished before its dump
    assert not text.startswith(("FAILED", "not run")), text
    log = json.loads(text)
    assert log["handle"]["status"] == "queued" and "fiscal_number" not in log["handle"]
    assert log["pending"] == ["chromium-1"]
    assert log["flushed"] == {"fiscalized": 1, "error": 0, "queued": 0}
    sealed = {i["fiscal_number"]: i["invoice"]["cashier_id"] for i in served.listing()}
    assert sealed[log["sealed"]] == "chromium-0"
    assert [s[:2] for s in log["statuses"]] == [["chromium-0", "fiscalized"], ["chromium-1", "fiscalized"]]
    assert sealed[log["statuses"][1][2]] == "chromium-1"
    assert list(sealed.values()).count("chromium-1") == 1
    assert log["unauthorized"] == [True, 401, "Authorization"]
