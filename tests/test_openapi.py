"""Issue 13: GET /api/v1/openapi.json describes every route the application really serves, and
nothing else (compared with aiohttp's router, both ways, so neither can drift); every $ref
resolves; every error code has its HTTP status; the daemon serves exactly that document, and
GET /health without a token."""

import json

import pytest
from aiohttp import web

from hostd.api import openapi
from hostd.api.app import Api
from hostd.books.envelope import HTTP_FOR
from tests.daemonkit import Stack


def served_routes(app):
    """{(METHOD, path)} of the router; HEAD is added by aiohttp for every GET."""
    return {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}


def drift(app, document):
    described = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    served = served_routes(app)
    problems = ["%s %s is served but not described: add op(%r, %r, ...) to OPERATIONS in hostd/api/openapi.py"
                % (m, p, m, p) for m, p in sorted(served - described)]
    problems += ["%s %s is described in hostd/api/openapi.py but no resource serves it: remove it, or add the "
                 "route to its module's routes()" % (m, p) for m, p in sorted(described - served)]
    return problems


def test_openapi_matches_the_real_routes():
    assert drift(Api(None, None).app(), openapi.spec()) == []


def test_the_comparison_can_fail_both_ways():
    app = Api(None, None).app()
    async def handler(request):
        return web.Response()
    app.router.add_get("/api/v1/reports/z", handler)
    document = openapi.spec()
    document["paths"]["/api/v1/ghost"] = {"get": {}}
    problems = drift(app, document)
    assert len(problems) == 2
    assert "GET /api/v1/reports/z is served but not described: add op('GET', '/api/v1/reports/z'" in problems[0]
    assert "GET /api/v1/ghost is described" in problems[1]


def test_every_ref_resolves_and_every_path_parameter_is_declared():
    document = openapi.spec()
    assert document["openapi"].startswith("3.1")
    text = json.dumps(document)
    for name in {part.split('"')[0] for part in text.split('"#/components/schemas/')[1:]}:
        assert name in document["components"]["schemas"], name
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
            assert declared == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}, (method, path)
            assert "200" in op["responses"] or "201" in op["responses"], (method, path)
            if method == "post":
                assert "requestBody" in op, path


def test_every_error_code_has_a_status():
    for entry in openapi.OPERATIONS:
        for code in entry["errors"]:
            assert code in HTTP_FOR, "%s %s: %s is not in hostd/books/envelope.py HTTP_FOR" % (
                entry["method"], entry["path"], code)


@pytest.mark.slow
def test_the_daemon_serves_the_document_and_health_without_a_token(tmp_path):
    stack = Stack(tmp_path)
    token = tmp_path / "token"
    token.write_text("a-token-for-this-test\n")
    try:
        stack.start_daemon(extra=["--token-file", str(token)])
        status, doc = stack.pos.get("/api/v1/openapi.json")
        assert status == 200 and doc == json.loads(json.dumps(openapi.spec()))
        status, doc = stack.pos.get("/health")
        assert status == 200 and doc["status"] == "ok"
        health = doc["payload"]
        assert health["device"]["reachable"] and health["device"]["state"] == "ready"
        assert 0 < health["journal"]["fill"] < 0.01 and health["store"]["writable"]
        assert stack.pos.get("/api/v1/tax-groups")[0] == 401   # the rest still needs the token
        stack.emulator.kill()
        stack.emulator.wait()
        status, doc = stack.pos.get("/health")
        assert status == 503 and doc["status"] == "degraded" and not doc["payload"]["device"]["reachable"]
    finally:
        stack.close()
