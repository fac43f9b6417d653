"""Issue 8: hostile but plausible input. Each case answers a typed 4xx envelope naming its field,
reaches nothing on the device, and leaves the daemon serving everyone else.

The reader itself (hostd/intake/strictjson.py, hostd/intake/canonical.py) is tested in process;
the corpus then goes to the real daemon over its real socket, in raw bytes where a polite HTTP
client would refuse to send them.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from hostd.intake import strictjson
from hostd.intake.canonical import parse_invoice
from hostd.errors import InvalidPayload
from tests import rawhttp
from tests.daemonkit import SAMPLES, Stack, sample

GOODS = os.path.join(SAMPLES, "invoice-000-goods.json")


def goods():
    with open(GOODS, "rb") as fh:
        return fh.read()


def many(field, count=501):
    """The goods sample with ``count`` copies of its first ``field`` entry (the limit is 500)."""
    doc = json.loads(goods())
    doc[field] = doc[field][:1] * count
    return json.dumps(doc).encode()


def refused(raw):
    with pytest.raises(InvalidPayload) as info:
        parse_invoice(raw)
    return info.value


# -- the reader, in process -------------------------------------------------------------------

@pytest.mark.parametrize("prefix,name", [(b"\xef\xbb\xbf", "byte order mark"), (b"\xff\xfe", "UTF-16"),
                                         (b"\xfe\xff", "UTF-16"), (b"\xff\xfe\x00\x00", "UTF-32")])
def test_a_bom_is_refused_naming_the_encoding(prefix, name):
    exc = refused(prefix + goods())
    assert name in exc.detail and exc.field == "body"


def test_utf16_without_a_bom_and_other_bytes_are_refused():
    assert "NUL" in refused(goods().decode().encode("utf-16-le")).detail
    assert "not UTF-8" in refused(goods().replace(b"Solar inverter", b"Solar invert\xe9r")).detail


def test_duplicate_keys_are_refused_at_every_depth():
    doc = goods().decode()
    nested = doc.replace('"unit_price": 100000', '"unit_price": 1, "unit_price": 100000', 1)
    assert nested != doc
    exc = refused(nested.encode())
    assert exc.field == "items[0].unit_price" and "duplicate" in exc.detail
    assert refused(doc.replace('"cashier_id"', '"outlet_id": "x", "cashier_id"', 1).encode()).field == "outlet_id"


def test_depth_is_bounded_before_any_recursion_error():
    assert "nested deeper" in refused(b"[" * 100000).detail
    assert "nested deeper" in refused(b'{"a":' * 9 + b"1" + b"}" * 9).detail


@pytest.mark.parametrize("literal", ["1e999990", "1e999999", "1E+99999999999999999999", "9" * 41,
                                     "0." + "0" * 45 + "1", "1" + "0" * 5000])
def test_huge_numbers_are_refused_in_bounded_time(literal):
    body = goods().replace(b'"unit_price": 100000', b'"unit_price": ' + literal.encode(), 1)
    started = time.process_time()
    exc = refused(body)
    assert time.process_time() - started < 0.5   # bounded work, not a performance figure
    assert exc.field in ("items[0].unit_price",), exc.detail


def test_inexact_amounts_are_refused_not_rounded():
    body = goods().replace(b'"unit_price": 100000', b'"unit_price": "0.1000000000000000000000000000001"', 1)
    exc = refused(body)
    assert exc.field == "items[0].unit_price" and "not exact" in exc.detail
    # the same amount written exactly as a decimal string is accepted
    ok = goods().replace(b'"unit_price": 100000', b'"unit_price": "100000.00"', 1)
    assert parse_invoice(ok).canonical


def test_lone_surrogates_and_constants_are_refused():
    exc = refused(goods().replace(b'"Solar', b'"\\ud800Solar', 1))
    assert "surrogate" in exc.detail and exc.field == "items[0].description"
    with pytest.raises(InvalidPayload):
        strictjson.loads(b'{"a": NaN}')
    with pytest.raises(InvalidPayload):
        strictjson.loads(b'{"a": "' + b"x" * (strictjson.MAX_STRING + 1) + b'"}')


def test_what_the_reader_returns_is_exact():
    doc = strictjson.loads(b'{"b": 1, "a": [0.10, "x", true, null]}')
    assert list(doc) == ["b", "a"] and doc["a"][0].as_tuple().exponent == -2 and doc["a"][2] is True


# -- the corpus against the real daemon -------------------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    token = tmp / "token"
    token.write_text("s3cret-token\n")
    s = Stack(tmp)
    s.start_daemon(extra=["--token-file", str(token)])
    yield s
    s.close()


AUTH = ("Authorization", b"Bearer s3cret-token")


def post(stack, body, headers=(AUTH,), path="/api/v1/invoices"):
    return rawhttp.send(stack.socket, rawhttp.request("POST", path, body, headers))


def get(stack, path, headers=(AUTH,)):
    return rawhttp.send(stack.socket, rawhttp.request("GET", path, b"", headers))


def device_state(stack):
    status, _, body = get(stack, "/api/v1/outlets/local/status")
    assert status == 200
    payload = json.loads(body)["payload"]
    return payload["counter"], payload["pending"]


CORPUS = [
    # (name, body, extra headers, expected status, expected field)
    ("bom", b"\xef\xbb\xbf" + goods(), (), 400, "body"),
    ("utf16", b"\xff\xfe" + goods().decode().encode("utf-16-le"), (), 400, "body"),
    ("utf16-no-bom", goods().decode().encode("utf-16-le"), (), 400, "body"),
    ("huge-exponent", goods().replace(b'"unit_price": 100000', b'"unit_price": 1e999990', 1), (), 400,
     "items[0].unit_price"),
    ("overflow", goods().replace(b'"unit_price": 100000', b'"unit_price": 1e999999', 1), (), 400,
     "items[0].unit_price"),
    ("inexact", goods().replace(b'"unit_price": 100000', b'"unit_price": "0.1000000000000000000000000000001"', 1),
     (), 400, "items[0].unit_price"),
    ("nested-duplicate", goods().replace(b'"unit_price": 100000', b'"unit_price": 1, "unit_price": 100000', 1), (),
     400, "items[0].unit_price"),
    ("deep", b"[" * 100000, (), 400, "body"),
    ("surrogate", goods().replace(b'"Solar', b'"\\ud800Solar', 1), (), 400, "items[0].description"),
    ("key-not-utf8", goods(), (("Idempotency-Key", b"\xff\xfekey"),), 400, "Idempotency-Key"),
    ("key-empty", goods(), (("Idempotency-Key", b""),), 400, "Idempotency-Key"),
    ("key-too-long", goods(), (("Idempotency-Key", b"k" * 256),), 400, "Idempotency-Key"),
    ("501-items", many("items"), (), 400, "items"),
    ("501-tax-lines", many("tax_groups"), (), 400, "tax_groups"),
    ("501-payments", many("payments"), (), 400, "payments"),
]


@pytest.mark.slow
@pytest.mark.slow
def test_a_batch_of_501_invoices_is_refused_whole_before_any_is_parsed(stack):
    item = json.loads(goods())
    body = json.dumps({"invoices": [{"idempotency_key": "b-%d" % i, "invoice": item} for i in range(501)]}).encode()
    before = device_state(stack)
    status, hdrs, data = post(stack, body, path="/api/v1/invoices/batch")
    doc = rawhttp.envelope(status, hdrs, data)
    assert status == 400 and doc["field"] == "invoices" and "1 to 500 items" in doc["detail"], doc
    assert device_state(stack) == before


@pytest.mark.parametrize("name,body,headers,want,field", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_gets_typed_errors_and_never_reaches_the_device(stack, name, body, headers, want, field):
    before = device_state(stack)
    status, hdrs, data = post(stack, body, (AUTH,) + headers)
    doc = rawhttp.envelope(status, hdrs, data)
    assert status == want and doc["field"] == field, doc
    assert device_state(stack) == before                     # no PREPARE, no seal
    status, _, _ = get(stack, "/api/v1/tax-groups")
    assert status == 200                                     # still serving


@pytest.mark.slow
@pytest.mark.parametrize("path,field", [("/api/v1/invoices?per_page=%C2%B2", "per_page"),
                                        ("/api/v1/invoices?page=" + "9" * 5000, "page"),
                                        ("/api/v1/invoices?per_page=0", "per_page")])
def test_bad_query_strings_are_typed(stack, path, field):
    status, hdrs, data = get(stack, path)
    assert status == 400 and rawhttp.envelope(status, hdrs, data)["field"] == field


@pytest.mark.slow
def test_authorization_bytes_that_are_not_utf8_are_a_401(stack):
    status, hdrs, data = get(stack, "/api/v1/tax-groups", headers=(("Authorization", b"Bearer \xff\xfe"),))
    doc = rawhttp.envelope(status, hdrs, data)
    assert status == 401 and doc["code"] == "UNAUTHORIZED" and doc["field"] == "Authorization"


@pytest.mark.slow
@pytest.mark.parametrize("raw", [b"GARBAGE\r\n\r\n", b"GET /api/v1/tax-groups HTTP/1.1\r\nHost: x\r\nX-Long: "
                                 + b"a" * 9000 + b"\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"])
def test_the_http_parsers_own_errors_come_back_in_the_envelope(stack, raw):
    status, hdrs, data = rawhttp.send(stack.socket, raw)
    assert status == 400 and rawhttp.envelope(status, hdrs, data)["code"] == "INVALID_REQUEST"


@pytest.mark.slow
def test_a_good_invoice_still_seals_after_the_corpus(stack):
    status, hdrs, data = post(stack, sample(cashier_id="after-corpus"), (AUTH, ("Idempotency-Key", b"after")))
    assert status == 200 and json.loads(data)["payload"]["fiscal_number"]


def test_an_empty_token_file_refuses_to_start(tmp_path):
    empty = tmp_path / "token"
    empty.write_text("  \n")
    done = subprocess.run([sys.executable, "-m", "hostd", "daemon", "--device", "/dev/null", "--socket",
                           str(tmp_path / "api.sock"), "--token-file", str(empty)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and "token file is empty" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "api.sock").exists()
