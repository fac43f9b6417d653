"""Issue 14: receipts. The QR drawn by segno decodes back (zxing-cpp) to the device's exact
qr_payload; the text and HTML layouts carry the sealed figures."""

import io
import json
import subprocess
import sys

import pytest
import zxingcpp
from PIL import Image

from hostd.sdk.transport import request
from tests.daemonkit import Stack, sample


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("receipts"))
    stack.start_daemon()
    status, doc = stack.pos.seal(sample(cashier_id="receipt"), key="receipt")
    assert status == 200
    yield stack, doc["payload"]
    stack.close()


def get(stack, path):
    status, headers, body = request(stack.socket, "GET", path)
    assert status == 200, body
    return headers, body


@pytest.mark.slow
def test_the_png_qr_decodes_to_the_exact_payload(sealed):
    stack, payload = sealed
    headers, png = get(stack, "/api/v1/invoices/%s/receipt?format=png" % payload["fiscal_number"])
    assert headers["Content-Type"] == "image/png"
    found = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]
    assert found == [payload["qr_payload"]]


@pytest.mark.slow
@pytest.mark.parametrize("columns", [32, 42, 48])
def test_the_text_layout_fits_its_columns_and_carries_the_seal(sealed, columns):
    stack, payload = sealed
    _, body = get(stack, "/api/v1/invoices/%s/receipt?format=txt&columns=%d" % (payload["fiscal_number"], columns))
    text = body.decode()
    assert max(len(line) for line in text.splitlines()) <= columns
    assert payload["fiscal_number"] in text and payload["auth_code"] in text and "1160.00" in text
    assert "".join(line for line in text.split("QR:\n")[1].splitlines()) == payload["qr_payload"]


@pytest.mark.slow
def test_the_html_receipt_names_every_figure_and_embeds_the_qr(sealed):
    stack, payload = sealed
    _, body = get(stack, "/api/v1/invoices/%s/receipt?format=html&width=58" % payload["fiscal_number"])
    page = body.decode()
    for needle in ('id="fiscal-number">%s<' % payload["fiscal_number"], 'id="auth-code">%s<' % payload["auth_code"],
                   'id="total">1160.00<', "<svg", "size: 58mm"):
        assert needle in page, needle
    status, _, err = request(stack.socket, "GET", "/api/v1/invoices/%s/receipt?format=pdf" % payload["fiscal_number"])
    assert status == 400 and json.loads(err)["field"] == "format"


@pytest.mark.slow
def test_fiscal_receipt_writes_the_file(sealed, tmp_path):
    stack, payload = sealed
    out = tmp_path / "qr.png"
    done = subprocess.run([sys.executable, "-m", "hostd", "receipt", payload["fiscal_number"], "--format", "png",
                           "-o", str(out), "--socket", stack.socket], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(str(out)))] == [payload["qr_payload"]]
    missing = subprocess.run([sys.executable, "-m", "hostd", "receipt", "NOPE-1", "--socket", stack.socket],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 6 and "NOT_FOUND" in missing.stderr
