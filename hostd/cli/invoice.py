"""``fiscal invoice create|get`` and ``fiscal status``: the daemon's POS API from the shell."""

import click

from hostd.cli.common import answer, fail, headers, socket_option, token_option
from hostd.errors import HostdError


@click.group()
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
    from hostd.sdk.transport import call_json

    hdrs = headers(token_file, **{"Content-Type": "application/json"})
    if idempotency_key:
        hdrs["Idempotency-Key"] = idempotency_key
    try:
        status, doc = call_json(socket_path, "POST", "/api/v1/invoices", file.read(), hdrs)
    except HostdError as exc:
        fail(exc, as_json)
    answer(status, doc, as_json, lambda p: "%s  auth %s  at %s" % (p["fiscal_number"], p["auth_code"], p["timestamp"]))


@invoice.command("get")
@click.argument("fiscal_number")
@socket_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def invoice_get(fiscal_number, socket_path, token_file, as_json):
    """Show a sealed invoice (by fiscal number or counter)."""
    from hostd.sdk.transport import call_json

    try:
        status, doc = call_json(socket_path, "GET", "/api/v1/invoices/%s" % fiscal_number,
                                headers=headers(token_file))
    except HostdError as exc:
        fail(exc, as_json)
    answer(status, doc, as_json, lambda p: "%s  %s %s  auth %s  ledger %s" % (
        p["fiscal_number"], p["invoice"]["totals"]["total"] if p["invoice"] else "?",
        p["invoice"]["totals"]["currency"] if p["invoice"] else "", p["auth_code"], p["ledger_hash"]))


@click.command()
@socket_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def status(socket_path, token_file, as_json):
    """Device state through the daemon: counter, clock, pending PREPAREs, journal fill."""
    from hostd.sdk.transport import call_json

    try:
        code, doc = call_json(socket_path, "GET", "/api/v1/outlets/local/status", headers=headers(token_file))
    except HostdError as exc:
        fail(exc, as_json)
    answer(code, doc, as_json, lambda p: "\n".join("%-13s %s" % (k, p[k]) for k in sorted(p)))
