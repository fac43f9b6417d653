"""The `fiscal` commands as a user runs them: output, --json, documented exit codes."""

import json
import os
import subprocess
import sys

import pytest

from tests.daemonkit import SAMPLES, Stack, sample


def fiscal(*args):
    return subprocess.run([sys.executable, "-m", "hostd"] + list(args), capture_output=True, text=True, timeout=60)


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    s.start_daemon()
    yield s
    s.close()


def test_invoice_create_get_status(stack, tmp_path):
    path = os.path.join(SAMPLES, "invoice-002-services.json")
    done = fiscal("invoice", "create", path, "--socket", stack.socket, "--idempotency-key", "cli-1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0].endswith("-00000001")
    again = fiscal("invoice", "create", path, "--socket", stack.socket, "--idempotency-key", "cli-1", "--json")
    assert json.loads(again.stdout)["payload"]["counter"] == 1
    got = fiscal("invoice", "get", "1", "--socket", stack.socket, "--json")
    assert got.returncode == 0 and json.loads(got.stdout)["payload"]["invoice"]["cashier_id"] == "cashier-13"
    state = fiscal("status", "--socket", stack.socket, "--json")
    assert state.returncode == 0 and json.loads(state.stdout)["payload"]["counter"] == 1
    bad = tmp_path / "bad.json"
    bad.write_bytes(sample(totals__total="1.00"))
    refused = fiscal("invoice", "create", str(bad), "--socket", stack.socket)
    assert refused.returncode == 2 and "totals.total" in refused.stderr
    missing = fiscal("invoice", "get", "99", "--socket", stack.socket)
    assert missing.returncode == 6 and "NOT_FOUND" in missing.stderr


def test_no_daemon_is_exit_3(tmp_path):
    result = fiscal("status", "--socket", str(tmp_path / "none.sock"))
    assert result.returncode == 3 and "cannot reach the daemon" in result.stderr
    result = fiscal("status", "--socket", str(tmp_path / "none.sock"), "--json")
    assert json.loads(result.stdout)["code"] == "DAEMON_UNAVAILABLE"


def test_token_and_outlet_scope(tmp_path):
    s = Stack(tmp_path)
    try:
        token = tmp_path / "token"
        token.write_text("s3cret\n")
        s.start_daemon(extra=["--token-file", str(token), "--outlet", "outlet-kin001"])
        status, doc = s.pos.seal(sample())
        assert status == 401 and doc["code"] == "UNAUTHORIZED"
        from hostd.sdk.transport import request
        headers = {"Authorization": "Bearer s3cret", "Content-Type": "application/json"}
        status, _, data = request(s.socket, "POST", "/api/v1/invoices", sample(outlet_id="outlet-other"), headers)
        assert status == 403 and json.loads(data)["field"] == "outlet_id"
        status, _, data = request(s.pos.socket, "POST", "/api/v1/invoices", sample(), headers)
        assert status == 200, data
        assert oct(os.stat(s.socket).st_mode & 0o777) == "0o660"
        refused = fiscal("status", "--socket", s.socket)
        assert refused.returncode == 2 and "UNAUTHORIZED" in refused.stderr
        ok = fiscal("status", "--socket", s.socket, "--token-file", str(token), "--json")
        assert ok.returncode == 0 and json.loads(ok.stdout)["payload"]["counter"] == 1
        got = fiscal("invoice", "get", "1", "--socket", s.socket, "--token-file", str(token))
        assert got.returncode == 0 and got.stdout.startswith(json.loads(data)["payload"]["fiscal_number"])
        path = tmp_path / "again.json"
        path.write_bytes(sample())
        env = dict(os.environ, FISCAL_TOKEN_FILE=str(token))
        made = subprocess.run([sys.executable, "-m", "hostd", "invoice", "create", str(path), "--socket", s.socket],
                              capture_output=True, text=True, timeout=60, env=env)
        assert made.returncode == 0 and made.stdout.split()[0].endswith("-00000002"), made.stderr
    finally:
        s.close()
