"""Issue 8: a hypothesis fuzz of bodies, headers and query strings against the real daemon.

At least 10^4 cases in CI (``FUZZ_EXAMPLES`` lowers it for a quick local run). Not one may answer
500 or anything but the envelope; afterwards the store and the device journal agree: every
journal invoice filed once, under its own fiscal number, nothing quarantined, the export verifies.
A p99 check compares a normal client alone and beside clients sending the 673-byte
``1e999990`` body, in the same run.
"""

import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostd.books.export import load_export, verify_export
from hostd.sdk.transport import request
from tests import rawhttp
from tests.daemonkit import Stack, sample, utc_now

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))

# The goods sample dated now, so its timestamp is one more field to fuzz (the sample leaves it out)
GOODS = json.loads(sample("invoice-000-goods.json", timestamp=utc_now()))

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10 ** 20, max_value=10 ** 20),
                      st.text(max_size=20), st.sampled_from(["0.10", "1e999990", "-1", "100000.001", "", "TG99"]),
                      st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for key in doc:
            yield from _paths(doc[key], prefix + (key,))
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            yield from _paths(item, prefix + (i,))


PATHS = [p for p in _paths(GOODS) if p]


@st.composite
def mutated_invoice(draw):
    doc = json.loads(json.dumps(GOODS))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(PATHS))
        target = doc
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = draw(json_value)
        except (KeyError, IndexError, TypeError):
            pass
    doc["cashier_id"] = draw(st.text(min_size=1, max_size=12))   # most seals are distinct invoices
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    raw_edit = draw(st.sampled_from(["none", "bom", "dup", "truncate", "deep", "surrogate", "latin1", "utf16"]))
    if raw_edit == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if raw_edit == "dup":
        return text.replace('"quantity": ', '"quantity": 1, "quantity": ', 1).encode()
    if raw_edit == "truncate":
        return text.encode()[:draw(st.integers(0, len(text)))]
    if raw_edit == "deep":
        return b"[" * draw(st.integers(1, 3000)) + text.encode()
    if raw_edit == "surrogate":
        return text.replace('"sale"', '"\\udc00sale"').encode()
    if raw_edit == "latin1":
        return text.encode("utf-8").replace(b"Solar", b"Sol\xe2r")
    if raw_edit == "utf16":
        return text.encode("utf-16")
    return text.encode()


header_bytes = st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)
query_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="#&=\r\n "), max_size=30)


@st.composite
def hostile_request(draw):
    kind = draw(st.sampled_from(["seal", "seal", "prepare", "commit", "abort", "list", "get", "verify"]))
    headers = [("Content-Type", b"application/json")]
    if draw(st.booleans()):
        headers.append(("Idempotency-Key", draw(st.one_of(header_bytes, st.sampled_from([b"same-key", b"k-1"])))))
    if draw(st.integers(0, 9)) == 0:
        headers.append(("Authorization", draw(header_bytes)))
    if kind in ("seal", "prepare"):
        path = "/api/v1/invoices" + ("/prepare" if kind == "prepare" else "")
        return rawhttp.request("POST", path, draw(mutated_invoice()), headers)
    if kind in ("commit", "abort"):
        body = draw(st.one_of(st.binary(max_size=60), json_value.map(lambda v: json.dumps({"nonce": v}).encode())))
        return rawhttp.request("POST", "/api/v1/invoices/" + kind, body, headers)
    if kind == "list":
        params = draw(st.dictionaries(st.sampled_from(["page", "per_page", "sort", "date_range", "status",
                                                       "outlet_id", "client.nif"]), query_text, max_size=3))
        from urllib.parse import quote
        query = "&".join("%s=%s" % (k, quote(v)) for k, v in params.items())
        return rawhttp.request("GET", "/api/v1/invoices?" + query, b"", headers)
    from urllib.parse import quote
    number = quote(draw(query_text), safe="")
    return rawhttp.request("GET", "/api/v1/%s/%s" % ("invoices" if kind == "get" else "verify", number or "x"),
                           b"", headers)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("fuzz"))
    s.start_daemon()
    yield s
    s.close()


@pytest.mark.slow
def test_fuzzed_requests_never_answer_500_and_store_and_journal_agree(stack):
    seen = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(hostile_request())
    def case(raw):
        status, headers, body = rawhttp.send(stack.socket, raw)
        seen[status] = seen.get(status, 0) + 1
        assert status != 500, body[:300]
        if status != 200:
            rawhttp.envelope(status, headers, body)

    case()
    print("fuzz answers by status:", seen)
    assert sum(seen.values()) >= EXAMPLES and seen.get(200, 0) > 0 and seen.get(400, 0) > 0, seen
    status, _, export = request(stack.socket, "GET", "/api/v1/audit/export")
    assert status == 200
    summary = verify_export(load_export(export))
    status, _, st_body = request(stack.socket, "GET", "/api/v1/outlets/local/status")
    payload = json.loads(st_body)["payload"]
    assert payload["quarantined"]["count"] == 0
    filed = []
    page = 1
    while True:
        status, _, listing = request(stack.socket, "GET", "/api/v1/invoices?per_page=200&page=%d" % page)
        rows = json.loads(listing)["payload"]
        filed.extend(rows)
        if len(rows) < 200:
            break
        page += 1
    assert len(filed) == summary["invoices"] == payload["counter"]
    assert [r["counter"] for r in filed] == list(range(1, payload["counter"] + 1))
    ledger = {r["counter"]: r["ledger_hash"] for r in filed}
    assert len(set(ledger.values())) == len(ledger)


def _p99(samples):
    ordered = sorted(samples)
    return ordered[int(len(ordered) * 0.99) - 1]


ATTACKER = """
import sys, time
from hostd.sdk.transport import request
body = open(sys.argv[2], "rb").read()
deadline = time.monotonic() + float(sys.argv[3])
sent = 0
while time.monotonic() < deadline:
    status = request(sys.argv[1], "POST", "/api/v1/invoices", body, {"Content-Type": "application/json"})[0]
    assert status == 400, status
    sent += 1
    time.sleep(0.01)
print(sent)
"""


@pytest.mark.slow
def test_huge_exponent_bodies_do_not_slow_a_normal_client(stack, tmp_path):
    """p99 of a normal client's GET, alone and with two 1e999990 senders in flight (same run;
    the best of up to three rounds of both, since other work on this machine can spoil one).

    The senders are separate processes, each resending the 673-byte body 10 ms after its last
    answer: two POS terminals retrying it, at a rate far above the one request per 25 s of CPU
    each such body cost before issue 8."""
    attack = json.dumps(GOODS).replace('"unit_price": 100000', '"unit_price": 1e999990', 1).encode()
    assert len(attack) < 1024
    body_file = tmp_path / "attack.json"
    body_file.write_bytes(attack)

    def normal(n=300):
        times = []
        for _ in range(n):
            started = time.perf_counter()
            status, _, _ = request(stack.socket, "GET", "/api/v1/tax-groups")
            times.append(time.perf_counter() - started)
            assert status == 200
        return _p99(times)

    rounds = []
    for _ in range(3):   # this machine is shared: a round spoiled by a neighbour's burst is measured again
        alone = normal()
        senders = [subprocess.Popen([sys.executable, "-c", ATTACKER, stack.socket, str(body_file), "60"],
                                    stdout=subprocess.PIPE) for _ in range(2)]
        try:
            time.sleep(0.3)                      # both senders running
            beside = normal()
        finally:
            for proc in senders:
                proc.terminate()
            outputs = [proc.communicate(timeout=30) for proc in senders]
        assert all(proc.returncode in (0, -15) for proc in senders), outputs
        print("p99 alone %.2f ms, beside two 1e999990 senders %.2f ms" % (1000 * alone, 1000 * beside))
        rounds.append((beside / alone, alone, beside))
        if beside < 0.1 and beside < 3 * alone:
            break
    # A regression (one such body costing seconds of CPU) fails every round; noise fails one.
    ratio, alone, beside = min(rounds)
    assert beside < 0.1 and ratio < 3, rounds
