"""The POS side of the API: an HTTP/1.1 client over the daemon's unix socket. Used by the CLI,
the demo and the tests exactly as POS software would use the daemon. It imports only
``hostd.errors``.
"""
