"""CORS for browser-based POS on the TCP listener: off unless origins are allowed by name.

A web page may call another origin only if that origin's answer says so (Fetch standard, "CORS
protocol"; origins as in RFC 6454). The daemon names each allowed origin exactly
(``--cors-origin https://pos.example:8443``, repeatable) and never answers ``*``: a fiscal device
must not be driven by whatever page a till's browser happens to show.

- A **preflight** (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) from an
  allowed origin, for GET/POST/HEAD and the headers the API reads, gets 204 with the allow
  headers; from any other origin, or for another method or header, 403 in the error envelope.
- Any other request that carries an ``Origin`` not on the list is refused with 403 before it is
  handled, so a page cannot even make the daemon work blind (a "simple" cross-origin POST needs no
  preflight). Requests without ``Origin`` (curl, POS software, the SDK) are not affected.
- Answers to allowed origins carry ``Access-Control-Allow-Origin: <that origin>`` and
  ``Vary: Origin``, errors included, so the page can read the envelope.

This middleware runs outside the error middleware (hostd/api/app.py) so that errors get the
headers too; its own refusals are envelopes it builds itself.
"""

from urllib.parse import urlsplit

from aiohttp import web

from hostd.api.replies import error_response
from hostd.errors import ConfigError

METHODS = ("GET", "HEAD", "POST")
HEADERS = ("authorization", "content-type", "idempotency-key")
EXPOSE = "Retry-After, Content-Disposition"
MAX_AGE = "600"


def origin(text):
    """``--cors-origin`` in RFC 6454 serialised form (lower-case scheme and host, no default port);
    ConfigError for ``*``, a path, or anything that is not http(s)://host[:port]."""
    if text.strip() == "*":
        raise ConfigError("--cors-origin takes exact origins, never '*'", field="--cors-origin")
    parts = urlsplit(text.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or port == -1:
        raise ConfigError("--cors-origin takes an origin such as https://pos.example or http://127.0.0.1:8080, "
                          "not %r" % text, field="--cors-origin")
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else "[%s]" % parts.hostname
    return "%s://%s%s" % (parts.scheme, host, "" if port in (None, default) else ":%d" % port)


class Cors:
    def __init__(self, origins=()):
        self.origins = frozenset(origin(o) for o in origins)

    def _allow(self, response, allowed):
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = EXPOSE
        response.headers.add("Vary", "Origin")
        return response

    @web.middleware
    async def middleware(self, request, handler):
        given = request.headers.get("Origin")
        if given is None:
            return await handler(request)
        if given.lower() not in self.origins:
            detail = ("cross-origin requests are off (no --cors-origin)" if not self.origins
                      else "origin %s is not allowed (--cors-origin)" % given)
            return error_response("FORBIDDEN", detail, "Origin")
        allowed = given.lower()
        wanted = request.headers.get("Access-Control-Request-Method")
        if request.method == "OPTIONS" and wanted is not None:
            return self._allow(self._preflight(request, wanted), allowed)
        return self._allow(await handler(request), allowed)

    def _preflight(self, request, wanted):
        if wanted not in METHODS:
            return error_response("FORBIDDEN", "method %s is not allowed cross-origin" % wanted,
                                  "Access-Control-Request-Method")
        asked = [h.strip().lower() for h in request.headers.get("Access-Control-Request-Headers", "").split(",")]
        for name in asked:
            if name and name not in HEADERS:
                return error_response("FORBIDDEN", "header %s is not allowed cross-origin" % name,
                                      "Access-Control-Request-Headers")
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = ", ".join(METHODS)
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Idempotency-Key"
        response.headers["Access-Control-Max-Age"] = MAX_AGE
        return response
