"""Issue 14 point 2: the browser SDK (hostd/sdk/browser/fiscal.mjs) tested with Node's own test
runner, against a real emulator and daemon on its TCP listener.

- the daemon serves the module at GET /sdk/fiscal.mjs without a token (the very bytes of the
  package file, text/javascript), revalidated by ETag, and refused to an origin not allowed;
- ``node --test tests/js/fiscal.unit.test.mjs``: a fake fetch (request shapes of every call,
  void/refund/reports included; the typed errors; the retry schedule and Retry-After; the
  Standard Webhooks vector; the builder's totals);
- ``node --test tests/js/fiscal.test.mjs`` in three phases against the daemon: ``live`` (seal,
  get, list, a 401 and a 400 as typed errors, a webhook delivery the daemon really sent, the served
  module), then with the daemon stopped ``offline`` (invoices queued in a file), then with it
  restarted ``restored`` (the queue flushed oldest first); this side then checks the daemon sealed
  each queued invoice exactly once and in order.

A node run passes when node exits 0 and every test of its phase passed (the TAP lines are read:
a skipped or missing test fails here); node's whole output is shown when it does not.
"""

import base64
import http.client
import json
import os
import re
import shutil
import subprocess

import pytest

from hostd.sdk.client import Client
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
PHASE_TESTS = {"unit": 13, "live": 5, "offline": 1, "restored": 1}   # tests each run must pass


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
        (tmp / "tokens").write_text("# the browser SDK's tests\n%s *\n" % TOKEN)
        self.extra = ["--tokens-file", str(tmp / "tokens"), "--listen", "127.0.0.1:%d" % self.port,
                      "--cors-origin", ORIGIN, "--webhook-retry", "0.1"]
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


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    receiver = Receiver()
    served = Served(tmp_path_factory.mktemp("browser-sdk"), receiver)
    yield served
    served.stack.close()
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
