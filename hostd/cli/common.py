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


class AuthorityDir(click.ParamType):
    """``--authority DIR``: the authority's folder (``fiscal authority init --dir DIR``) in every
    command. A path to its ``authority.pub`` is taken as that folder, so the one meaning holds
    whichever a user types. ``need_key``: the folder must also hold ``authority.key`` (signing)."""

    name = "DIR"

    def __init__(self, need_key=False):
        self.need_key = need_key

    def convert(self, value, param, ctx):
        folder = os.path.dirname(value) if os.path.isfile(value) and os.path.basename(value) == "authority.pub" else value
        if not os.path.isdir(folder):
            self.fail("%s is not an authority folder (make one with `fiscal authority init --dir DIR`)" % value,
                      param, ctx)
        for name in ("authority.pub",) + (("authority.key",) if self.need_key else ()):
            if not os.path.isfile(os.path.join(folder, name)):
                self.fail("%s has no %s (an authority folder holds authority.pub%s)" % (
                    folder, name, " and, to sign, authority.key" if self.need_key else ""), param, ctx)
        return folder


def authority_public_key(folder):
    """The authority public key (raw 64 bytes) in ``folder``."""
    from hostd.books.keys import load_public_key

    return load_public_key(os.path.join(folder, "authority.pub"))
