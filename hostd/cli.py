"""``fiscal``: the command-line entry point (a click group).

Exit codes (documented in the README): 0 success; 1 verification failed (fiscal verify) or an
unexpected failure or, for fiscal doctor, a problem found; 2 usage error or invalid invoice; 3 device or
daemon unavailable; 4 fiscal doctor found no board (and nothing wrong); 5 the device refused; 6 not found.
``--json`` prints exactly one JSON document on stdout; progress and logs go to stderr.
"""

import json
import os
import sys

import click

from hostd.board_cli import board
from hostd.doctor import doctor
from hostd.errors import HostdError
from hostd.identity_cli import authority
from hostd.verify_cmd import verify


def _fail(exc, as_json):
    """The single place where host errors become output and an exit code."""
    if as_json:
        click.echo(json.dumps({"status": "error", "code": exc.code, "detail": exc.detail, "field": exc.field}))
    else:
        click.echo("error: %s%s" % (exc.detail, " (field %s)" % exc.field if exc.field else ""), err=True)
    sys.exit(exc.exit_code)


@click.group()
def main():
    """Open fiscal memory device: emulator, device tools and (soon) the host daemon."""


@main.command()
@click.option("--profile", required=True, type=click.Path(file_okay=False), help="Directory holding flash.bin and key.bin.")
@click.option("--seed", type=int, default=None, help="Deterministic entropy (tests and demos only).")
@click.option("--cut-after", type=int, default=None, help="Simulate power loss on flash program N+1.")
@click.option("--cut-bytes", type=int, default=0, show_default=True, help="Bytes of the cut program that land.")
@click.option("--fail-program", type=int, default=None, help="Make flash program N fail.")
@click.option("--max-pending", type=click.IntRange(1, 255), default=10, show_default=True)
@click.option("--nonce-ttl", type=click.IntRange(1, 3600), default=120, show_default=True,
              help="Seconds before a PREPARE expires.")
@click.option("--exit-with-parent", is_flag=True, help="Stop when the parent process dies (used by fiscal up).")
@click.option("--factory-fresh", is_flag=True,
              help="A new profile gets no key: provision it like a board (`fiscal board provision`).")
@click.option("--authority", "authority_pub", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Pin this authority public key (authority.pub): CERTIFY refuses certificates it did not sign.")
def emulator(profile, seed, cut_after, cut_bytes, fail_program, max_pending, nonce_ttl, exit_with_parent,
             factory_fresh, authority_pub):
    """Run the fiscal core on a pty; print the pty path as the first stdout line."""
    from device.emu_flash import ProfileBusy
    from device.emulator import pin_authority, serve

    if authority_pub is not None:
        from hostd.export import load_public_key

        try:
            pin_authority(profile, load_public_key(authority_pub))
        except HostdError as exc:
            _fail(exc, False)
    try:
        serve(profile, seed, cut_after, cut_bytes, fail_program, max_pending, nonce_ttl,
              exit_with_parent=exit_with_parent, factory_fresh=factory_fresh)
    except ProfileBusy as exc:
        click.echo("error: %s" % exc, err=True)
        sys.exit(3)


@main.command()
@click.option("--profile", default=None, type=click.Path(file_okay=False),
              help="Emulator profile (default: a fresh temporary one).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.argument("invoices", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def demo(profile, as_json, invoices):
    """Run `fiscal up`, seal invoices over its socket (default: the two samples), verify the export."""
    from hostd.demo import run_demo

    try:
        result = run_demo(profile, list(invoices))
    except HostdError as exc:
        _fail(exc, as_json)
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    for p in result["sealed"]:
        click.echo("sealed %-24s %-26s auth %s  at %s" % (p["fiscal_number"], p["file"], p["auth_code"], p["timestamp"]))
        click.echo("  qr: %s" % p["qr_payload"])
    device, summary = result["device"], result["journal"]
    click.echo("device %s: counter %d, %d records, journal %.3f%% full"
               % (device["device_id"], device["counter"], device["records"], 100 * device["journal_fill"]))
    click.echo("audit export %s verified offline: %d records, %d invoices, head %s"
               % (result["export"], summary["records"], summary["invoices"], summary["last_hash"][:16]))
    click.echo("profile %s (run `fiscal up --profile %s` to keep the device)" % (result["profile"], result["profile"]))


main.add_command(verify)
main.add_command(doctor)
main.add_command(authority)
main.add_command(board)

DEFAULT_SOCKET = os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/tmp"), "fiscal", "api.sock")
socket_option = click.option("--socket", "socket_path", default=DEFAULT_SOCKET, show_default=True,
                             envvar="FISCAL_SOCKET", type=click.Path(dir_okay=False), help="The daemon's unix socket.")
token_option = click.option("--token-file", default=None, envvar="FISCAL_TOKEN_FILE",
                            type=click.Path(exists=True, dir_okay=False),
                            help="Send 'Authorization: Bearer <token>' with the token in this file (for a "
                                 "daemon started with --token-file).")


def _read_token(token_file):
    """The token as the daemon reads it: the file's text without surrounding whitespace."""
    with open(token_file) as fh:
        return fh.read().strip()


def _headers(token_file, **more):
    headers = dict(more)
    if token_file is not None:
        headers["Authorization"] = "Bearer " + _read_token(token_file)
    return headers


@main.command()
@click.option("--device", required=True,
              help="'auto' (the one fiscal board on USB), 'serial:<SERIAL>' (the board with that USB serial "
                   "number), or a path (a tty, /dev/fiscal/<SERIAL>, the emulator's pty). Looked up again at "
                   "every reconnect, so the board may be plugged in after the daemon starts.")
@socket_option
@click.option("--db", default=None, type=click.Path(dir_okay=False), help="SQLite store (default: beside the socket).")
@click.option("--group", default=None, help="Group that may use the socket.")
@click.option("--mode", default="0660", show_default=True, help="Socket file mode (octal).")
@click.option("--token-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Require 'Authorization: Bearer <token>' with the token in this file.")
@click.option("--outlet", default=None, help="Only seal invoices of this outlet_id (others get 403).")
def daemon(device, socket_path, db, group, mode, token_file, outlet):
    """Own the device and serve the POS API on a unix socket."""
    from hostd.server import serve

    token = _read_token(token_file) if token_file else None
    os.makedirs(os.path.dirname(os.path.abspath(socket_path)), exist_ok=True)
    serve(device, socket_path, db, int(mode, 8), group, token, outlet)


@main.command()
@click.option("--profile", required=True, type=click.Path(file_okay=False), help="Emulator profile directory.")
@socket_option
@click.option("--seed", type=int, default=None, help="Deterministic emulator entropy (tests and demos).")
def up(profile, socket_path, seed):
    """The emulator plus the daemon, with sensible defaults; restarts the emulator if it dies."""
    from hostd.supervisor import run_up

    run_up(profile, socket_path, seed)


@main.group()
def invoice():
    """Seal and read invoices through the daemon."""


@invoice.command("create")
@click.argument("file", type=click.File("rb"))
@socket_option
@token_option
@click.option("--idempotency-key", default=None, help="Retry-safe key (default: a new one per call).")
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's JSON answer.")
def invoice_create(file, socket_path, token_file, idempotency_key, as_json):
    """Seal FILE.json (a canonical invoice) and print its fiscal number."""
    from hostd.client import call_json

    headers = _headers(token_file, **{"Content-Type": "application/json"})
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    try:
        status, doc = call_json(socket_path, "POST", "/api/v1/invoices", file.read(), headers)
    except HostdError as exc:
        _fail(exc, as_json)
    _answer(status, doc, as_json, lambda p: "%s  auth %s  at %s" % (p["fiscal_number"], p["auth_code"], p["timestamp"]))


@invoice.command("get")
@click.argument("fiscal_number")
@socket_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def invoice_get(fiscal_number, socket_path, token_file, as_json):
    """Show a sealed invoice (by fiscal number or counter)."""
    from hostd.client import call_json

    try:
        status, doc = call_json(socket_path, "GET", "/api/v1/invoices/%s" % fiscal_number,
                                headers=_headers(token_file))
    except HostdError as exc:
        _fail(exc, as_json)
    _answer(status, doc, as_json, lambda p: "%s  %s %s  auth %s  ledger %s" % (
        p["fiscal_number"], p["invoice"]["totals"]["total"] if p["invoice"] else "?",
        p["invoice"]["totals"]["currency"] if p["invoice"] else "", p["auth_code"], p["ledger_hash"]))


@main.command()
@socket_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def status(socket_path, token_file, as_json):
    """Device state through the daemon: counter, clock, pending PREPAREs, journal fill."""
    from hostd.client import call_json

    try:
        code, doc = call_json(socket_path, "GET", "/api/v1/outlets/local/status", headers=_headers(token_file))
    except HostdError as exc:
        _fail(exc, as_json)
    _answer(code, doc, as_json, lambda p: "\n".join("%-13s %s" % (k, p[k]) for k in sorted(p)))


EXIT_FOR_HTTP = {400: 2, 401: 2, 403: 2, 404: 6, 413: 2, 422: 5, 429: 3, 500: 1, 503: 3}


def _answer(status, doc, as_json, human):
    if as_json:
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    elif status == 200:
        click.echo(human(doc["payload"]))
    else:
        click.echo("error: %s %s%s" % (doc.get("code"), doc.get("detail"),
                                       " (field %s)" % doc["field"] if doc.get("field") else ""), err=True)
    if status != 200:
        sys.exit(EXIT_FOR_HTTP.get(status, 1))


def samples_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "samples")
