"""What every ``fiscal`` command shares: the one place host errors become output and an exit
code, the daemon-client options, and the answer printer.

Exit codes (documented in the README): 0 success; 1 verification failed (fiscal verify) or an
unexpected failure or, for fiscal doctor, a problem found; 2 usage error or invalid invoice; 3 device or
daemon unavailable; 4 fiscal doctor found no board (and nothing wrong); 5 the device refused; 6 not found.
``--json`` prints exactly one JSON document on stdout; progress and logs go to stderr.
"""

import json
import os
import sys

import click

EXIT_FOR_HTTP = {400: 2, 401: 2, 403: 2, 404: 6, 413: 2, 422: 5, 429: 3, 500: 1, 503: 3}

DEFAULT_SOCKET = os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/tmp"), "fiscal", "api.sock")
socket_option = click.option("--socket", "socket_path", default=DEFAULT_SOCKET, show_default=True,
                             envvar="FISCAL_SOCKET", type=click.Path(dir_okay=False), help="The daemon's unix socket.")
token_option = click.option("--token-file", default=None, envvar="FISCAL_TOKEN_FILE",
                            type=click.Path(exists=True, dir_okay=False),
                            help="Send 'Authorization: Bearer <token>' with the token in this file (for a "
                                 "daemon started with --token-file).")


def fail(exc, as_json):
    """The single place where host errors become output and an exit code."""
    if as_json:
        click.echo(json.dumps({"status": "error", "code": exc.code, "detail": exc.detail, "field": exc.field}))
    else:
        click.echo("error: %s%s" % (exc.detail, " (field %s)" % exc.field if exc.field else ""), err=True)
    sys.exit(exc.exit_code)


def read_token(token_file):
    """The token as the daemon reads it: the file's text without surrounding whitespace."""
    with open(token_file) as fh:
        return fh.read().strip()


def headers(token_file, **more):
    out = dict(more)
    if token_file is not None:
        out["Authorization"] = "Bearer " + read_token(token_file)
    return out


def answer(status, doc, as_json, human):
    """Print a daemon answer (JSON, or ``human(payload)``), and exit with its code unless 200."""
    if as_json:
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    elif status == 200:
        click.echo(human(doc["payload"]))
    else:
        click.echo("error: %s %s%s" % (doc.get("code"), doc.get("detail"),
                                       " (field %s)" % doc["field"] if doc.get("field") else ""), err=True)
    if status != 200:
        sys.exit(EXIT_FOR_HTTP.get(status, 1))
