"""The POS side of the API (issue 14; seed 003): the typed Python SDK (``Client``, invoice
builders, the offline queue, webhook verification) and the HTTP/1.1 transport over the daemon's
unix socket or localhost listener. Used by the CLI, the demo and the tests exactly as POS
software would use the daemon. It imports ``hostd.errors``, ``hostd.intake`` (exact amounts, the
pricing helper), ``hostd.books`` (webhook signatures) and ``protocol``. Nothing is imported here
at package import; ``from hostd.sdk.client import Client``.
"""
