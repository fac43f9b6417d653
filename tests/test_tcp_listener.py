"""Issue 13, the optional TCP listener for browser-based POS: real TCP on 127.0.0.1 to a real daemon.

- a missing or wrong token is 401, a token of another outlet is 403 (invoice outlet_id and the
  outlet status path), the right one seals; /health answers without a token;
- a non-loopback bind without TLS (and without --allow-remote) is refused, so is a listener
  without any token; a certificate turns TLS on;
- a browser-style CORS preflight from an origin that is not allowed is refused (403 envelope, no
  Access-Control-Allow-Origin); an allowed one gets exactly its origin back, never '*';
- the tokens file is reread on SIGHUP; a file that does not parse keeps the old tokens;
- one access-log line per request, with the fiscal number of a seal.
"""

import datetime
import http.client
import json
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from tests.daemonkit import Stack, sample

pytestmark = pytest.mark.slow

KIN = "K" * 16 + "-kin001"
OTHER = "O" * 16 + "-other"
ALL = "A" * 24
ORIGIN = "http://pos.example:8080"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tokens_file(path, text):
    path.write_text(text)
    return str(path)


class Tcp:
    def __init__(self, port, context=None):
        self.port, self.context = port, context

    def call(self, method, path, body=None, headers=None):
        if self.context is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        else:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=self.context)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status != 500, data
            return resp.status, dict(resp.getheaders()), json.loads(data) if data else None
        finally:
            conn.close()


def bearer(token, **more):
    return dict({"Authorization": "Bearer " + token, "Content-Type": "application/json"}, **more)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tcp")
    stack = Stack(tmp)
    port = free_port()
    tokens = tokens_file(tmp / "tokens", "# till tokens\n%s outlet-kin001\n%s outlet-other,outlet-x\n%s *\n"
                         % (KIN, OTHER, ALL))
    log = open(tmp / "daemon.log", "wb")
    stack.start_daemon(extra=["--tokens-file", tokens, "--listen", "127.0.0.1:%d" % port, "--cors-origin", ORIGIN],
                       stderr=log)
    yield stack, Tcp(port), tmp / "tokens", tmp / "daemon.log"
    stack.close()
    log.close()


def test_tokens_are_required_and_scoped_to_outlets(served):
    stack, tcp, _, log = served
    status, _, doc = tcp.call("POST", "/api/v1/invoices", sample(), {"Content-Type": "application/json"})
    assert status == 401 and doc["code"] == "UNAUTHORIZED" and doc["field"] == "Authorization"
    status, _, doc = tcp.call("POST", "/api/v1/invoices", sample(), bearer("W" * 20))
    assert status == 401
    status, _, doc = tcp.call("POST", "/api/v1/invoices", sample(outlet_id="outlet-kin001"), bearer(OTHER))
    assert status == 403 and doc["code"] == "FORBIDDEN" and doc["field"] == "outlet_id"
    status, _, doc = tcp.call("POST", "/api/v1/invoices", sample(outlet_id="outlet-kin001"), bearer(KIN))
    assert status == 200 and doc["code"] == "INVOICE_FISCALIZED"
    number = doc["payload"]["fiscal_number"]
    assert tcp.call("GET", "/api/v1/outlets/outlet-kin001/status", headers=bearer(OTHER))[0] == 403
    assert tcp.call("GET", "/api/v1/outlets/outlet-kin001/status", headers=bearer(KIN))[0] == 200
    assert tcp.call("GET", "/api/v1/outlets/outlet-x/status", headers=bearer(ALL))[0] == 200
    assert tcp.call("GET", "/api/v1/tax-groups")[0] == 401
    status, _, doc = tcp.call("GET", "/health")   # no token
    assert status == 200 and doc["payload"]["device"]["reachable"] and doc["payload"]["store"]["writable"]
    # the unix socket asks for the same tokens
    assert stack.pos.seal(sample())[0] == 401
    deadline = time.monotonic() + 30
    while "POST /api/v1/invoices 200" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [line for line in log.read_text().splitlines() if "fiscal.access: POST /api/v1/invoices 200" in line]
    assert lines and lines[0].endswith(" ms " + number), lines
    assert any("fiscal.access: POST /api/v1/invoices 401" in line for line in log.read_text().splitlines())


def test_cors_preflight_from_an_origin_not_allowed_is_refused(served):
    _, tcp, _, _ = served
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
    status, headers, doc = tcp.call("OPTIONS", "/api/v1/invoices", headers=dict(ask, Origin="http://evil.example"))
    assert status == 403 and doc["code"] == "FORBIDDEN" and doc["field"] == "Origin"
    assert "Access-Control-Allow-Origin" not in headers
    status, headers, _ = tcp.call("OPTIONS", "/api/v1/invoices", headers=dict(ask, Origin=ORIGIN))
    assert status == 204 and headers["Access-Control-Allow-Origin"] == ORIGIN and "Origin" in headers["Vary"]
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "authorization" in headers["Access-Control-Allow-Headers"].lower()
    status, headers, _ = tcp.call("OPTIONS", "/api/v1/invoices",
                                  headers=dict(ask, Origin=ORIGIN, **{"Access-Control-Request-Method": "DELETE"}))
    assert status == 403 and "Access-Control-Allow-Origin" in headers
    # the real request that follows: its answer (an error too) is readable by that origin only
    status, headers, doc = tcp.call("GET", "/api/v1/tax-groups", headers=dict(bearer(ALL), Origin=ORIGIN))
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ORIGIN
    status, headers, _ = tcp.call("GET", "/api/v1/tax-groups", headers={"Origin": ORIGIN})
    assert status == 401 and headers["Access-Control-Allow-Origin"] == ORIGIN
    status, headers, doc = tcp.call("POST", "/api/v1/invoices", sample(), dict(bearer(ALL), Origin="http://evil.example"))
    assert status == 403 and doc["field"] == "Origin" and "Access-Control-Allow-Origin" not in headers


def test_sighup_rereads_the_tokens_file_and_a_broken_one_keeps_the_old_tokens(served):
    stack, tcp, path, log = served
    new = "N" * 20
    original = path.read_text()
    try:
        path.write_text("%s *\n" % new)
        stack.daemon.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while tcp.call("GET", "/api/v1/tax-groups", headers=bearer(new))[0] != 200:
            assert time.monotonic() < deadline, "the new token was never accepted after SIGHUP"
            time.sleep(0.1)
        assert tcp.call("GET", "/api/v1/tax-groups", headers=bearer(ALL))[0] == 401
        path.write_text("%s *\nshort *\n" % ("M" * 20))
        stack.daemon.send_signal(signal.SIGHUP)
        while "stay in force" not in log.read_text():
            assert time.monotonic() < deadline + 30, "no log line for the broken tokens file"
            time.sleep(0.1)
        assert "line 2" in log.read_text()
        assert tcp.call("GET", "/api/v1/tax-groups", headers=bearer(new))[0] == 200
        assert tcp.call("GET", "/api/v1/tax-groups", headers=bearer("M" * 20))[0] == 401
    finally:
        path.write_text(original)
        stack.daemon.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while tcp.call("GET", "/api/v1/tax-groups", headers=bearer(ALL))[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)


def _daemon(tmp_path, *extra):
    return subprocess.run([sys.executable, "-m", "hostd", "daemon", "--device", str(tmp_path / "none"),
                           "--socket", str(tmp_path / "api.sock")] + list(extra),
                          capture_output=True, text=True, timeout=60)


def test_non_loopback_binds_need_allow_remote_and_tls_and_every_listener_a_token(tmp_path):
    tokens = tokens_file(tmp_path / "tokens", ALL + " *\n")
    port = str(free_port())
    done = _daemon(tmp_path, "--listen", "0.0.0.0:" + port, "--tokens-file", tokens)
    assert done.returncode == 2 and "not a loopback address" in done.stderr and "--allow-remote" in done.stderr
    done = _daemon(tmp_path, "--listen", "0.0.0.0:" + port, "--tokens-file", tokens, "--allow-remote")
    assert done.returncode == 2 and "needs TLS" in done.stderr
    done = _daemon(tmp_path, "--listen", "127.0.0.1:" + port)
    assert done.returncode == 2 and "always needs a bearer token" in done.stderr
    done = _daemon(tmp_path, "--listen", "pos.example:" + port, "--tokens-file", tokens)
    assert done.returncode == 2 and "IP address" in done.stderr
    bad = tokens_file(tmp_path / "bad", ALL + " *\n" + ALL + " outlet-1\n")
    done = _daemon(tmp_path, "--listen", "127.0.0.1:" + port, "--tokens-file", bad)
    assert done.returncode == 2 and "line 2" in done.stderr and "already listed" in done.stderr
    done = _daemon(tmp_path, "--cors-origin", "*")
    assert done.returncode == 2 and "never '*'" in done.stderr
    for out in (done.stderr,):
        assert "Traceback" not in out
    assert not (tmp_path / "api.sock").exists()


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")


def test_a_certificate_turns_tls_on(tmp_path):
    cert, key = _self_signed(tmp_path)
    stack = Stack(tmp_path)
    port = free_port()
    try:
        stack.start_daemon(extra=["--tokens-file", tokens_file(tmp_path / "tokens", ALL + " *\n"),
                                  "--listen", "127.0.0.1:%d" % port, "--tls-cert", cert, "--tls-key", key])
        context = ssl.create_default_context(cafile=cert)
        status, _, doc = Tcp(port, context).call("GET", "/api/v1/tax-groups", headers=bearer(ALL))
        assert status == 200 and doc["code"] == "TAX_GROUPS"
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            Tcp(port).call("GET", "/health")   # plain HTTP on a TLS port gets no answer
    finally:
        stack.close()
