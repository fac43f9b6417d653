"""What the API answers: JSON envelopes (seed 002 "Response structure" and "Error handling") and
the refusals the API layer decides itself (authorisation, limits, lookups). The middleware in
hostd/api/app.py turns every HostdError into ``error_response``."""

from aiohttp import web

from hostd.books import envelope
from hostd.errors import HostdError


def json_response(status, doc, headers=None):
    return web.Response(status=status, body=envelope.dumps(doc), content_type="application/json", headers=headers)


def error_response(code, detail, field=None, retry_after=None, device_code=None):
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    body = envelope.error_body(code, detail, field, retry_after, device_code)
    return web.Response(status=envelope.HTTP_FOR.get(code, 500), body=body, content_type="application/json",
                        headers=headers)


class Refusal(HostdError):
    """A refusal decided by the API layer itself, with its envelope code."""

    def __init__(self, code, detail, field=None, retry=None, device_code=None):
        HostdError.__init__(self, detail, field)
        self.code = code
        self.retry = retry
        self.device_code = device_code


class Resource:
    """One resource module's handlers, sharing the Api (hostd/api/app.py): owner, store, auth."""

    def __init__(self, api):
        self.api = api
        self.store = api.store
        self.owner = api.owner
