"""``fiscal invoice create|get`` and ``fiscal status``: the daemon's POS API from the shell."""

import json
import sys

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


def render_status(p):
    """The device status for people: ISO 8601 time, fill in percent, faults only when present."""
    from protocol.timefmt import format_time

    lines = ["device       %s (%s)" % (p["device_id"], p["device_state"]),
             "counter      %d (%d journal records)" % (p["counter"], p["records"]),
             "clock        %s" % (format_time(p["clock"]) if p.get("clock") else "not set"),
             "pending      %d of %d PREPAREs" % (p["pending"], p["max_pending"]),
             "journal      %.3f%% full (%d of %d bytes)" % (100.0 * p["journal_fill"], p["journal_used"],
                                                          p["journal_size"]),
             "firmware     %s" % p.get("firmware")]
    if p.get("fault"):
        lines.append("fault        %s" % p["fault"])
    held = (p.get("quarantined") or {}).get("count")
    if held:
        lines.append("quarantined  %d journal record(s) not filed: %s" % (held, ", ".join(
            "%s (%s)" % (r["fiscal_number"] or "seq %d" % r["seq"], r["reason"]) for r in p["quarantined"]["records"])))
    return "\n".join(lines)


@click.command()
@socket_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def status(socket_path, token_file, as_json):
    """Device state through the daemon: counter, clock, pending PREPAREs, journal fill.

    Exit 3 when the daemon cannot be reached or the device is unavailable."""
    from hostd.sdk.transport import call_json

    try:
        code, doc = call_json(socket_path, "GET", "/api/v1/outlets/local/status", headers=headers(token_file))
    except HostdError as exc:
        fail(exc, as_json)
    payload = doc.get("payload") if code == 200 else None
    if payload is not None and payload.get("device_state") == "unavailable":
        if as_json:
            click.echo(json.dumps(doc, indent=2, sort_keys=True))
        else:
            click.echo("error: the daemon serves, but the device is unavailable: %s" % payload.get("detail"), err=True)
        sys.exit(3)
    answer(code, doc, as_json, render_status)
