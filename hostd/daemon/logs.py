"""The daemon's log: the standard ``logging`` module, one line per event, two formats.

Why two formats: under systemd, stderr goes to journald, which stamps every line itself and reads
a ``<N>`` prefix as the line's syslog priority (sd-daemon(3), "SD_ERR" ... "SD_DEBUG"; the
prefix values are RFC 5424 severities). A timestamp of ours there would be a second, redundant
one, and without the prefix every line would be filed as "info". systemd sets ``JOURNAL_STREAM``
when stderr is connected to the journal and ``INVOCATION_ID`` for every service it runs
(systemd.exec(5)); either one means "under systemd". Everywhere else a line starts with an
ISO 8601 UTC timestamp and the level.

Loggers are named ``fiscal.<part>`` (``fiscal.daemon``, ``fiscal.owner``, ``fiscal.access``,
``fiscal.up``); ``setup`` configures the root logger, so aiohttp's and asyncio's own records come
out in the same format. ``AccessLog`` writes one line per HTTP request: method, path, status,
milliseconds, and the fiscal number when the answer carries one.
"""

import logging
import os
import re
import sys
import time

from aiohttp.abc import AbstractAccessLogger

LEVELS = ("debug", "info", "warning", "error")
# logging level -> syslog severity (RFC 5424 section 6.2.1), as sd-daemon(3)'s SD_* prefixes
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
_FISCAL_NUMBER = re.compile(rb'"fiscal_number":\s*"([^"\\]{1,64})"')


def under_systemd(environ=None):
    environ = os.environ if environ is None else environ
    return bool(environ.get("JOURNAL_STREAM") or environ.get("INVOCATION_ID"))


def priority(levelno):
    """The syslog severity of a logging level (levels between the named ones round down)."""
    for level in sorted(PRIORITY, reverse=True):
        if levelno >= level:
            return PRIORITY[level]
    return 7


class JournalFormatter(logging.Formatter):
    """``<N>name: message`` on every line (a traceback's lines too, so each keeps its priority)."""

    def format(self, record):
        text = logging.Formatter.format(self, record)
        prefix = "<%d>" % priority(record.levelno)
        return "\n".join(prefix + line for line in text.splitlines() or [""])


class StampFormatter(logging.Formatter):
    """``2026-01-02T03:04:05.678Z INFO    name: message`` (UTC, ISO 8601)."""

    def formatTime(self, record, datefmt=None):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + ".%03dZ" % record.msecs


def setup(level="info", stream=None, environ=None):
    """Send every log record at ``level`` or above to ``stream`` (stderr) in the right format."""
    if level not in LEVELS:
        raise ValueError("log level must be one of %s, not %r" % (", ".join(LEVELS), level))
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    if under_systemd(environ):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(StampFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def fiscal_number(request, response):
    """The fiscal number an answer is about, for the access log: a seal, a commit, or a GET of one
    invoice (never the list, which carries many)."""
    match = getattr(request, "match_info", None) or {}   # a parser error's request has none
    if request.method == "GET" and match.get("fiscal_number"):
        return match["fiscal_number"]
    body = getattr(response, "body", None)
    if request.method == "POST" and isinstance(body, bytes) and response.status == 200:
        found = _FISCAL_NUMBER.search(body[:4096])
        if found:
            return found.group(1).decode("ascii", "replace")
    return None


class AccessLog(AbstractAccessLogger):
    """One line per request (aiohttp's access_log_class): ``POST /api/v1/invoices 200 5.2 ms N``."""

    def log(self, request, response, time):
        number = fiscal_number(request, response)
        self.logger.info("%s %s %d %.1f ms%s", request.method, request.path, response.status, time * 1000.0,
                         " " + number if number else "")
