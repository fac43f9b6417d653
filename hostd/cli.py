"""``fiscal``: the command-line entry point (a click group).

Exit codes (documented in the README): 0 success; 1 unexpected failure; 2 usage error or invalid
invoice; 3 device unavailable or not answering; 4 verification failed; 5 the device refused.
``--json`` prints exactly one JSON document on stdout; progress and logs go to stderr.
"""

import json
import os
import sys

import click

from hostd.errors import HostdError


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
@click.option("--max-pending", type=int, default=10, show_default=True)
@click.option("--nonce-ttl", type=int, default=120, show_default=True, help="Seconds before a PREPARE expires.")
def emulator(profile, seed, cut_after, cut_bytes, fail_program, max_pending, nonce_ttl):
    """Run the fiscal core on a pty; print the pty path as the first stdout line."""
    from device.emulator import serve

    serve(profile, seed, cut_after, cut_bytes, fail_program, max_pending, nonce_ttl)


@main.command()
@click.option("--profile", default=None, type=click.Path(file_okay=False),
              help="Emulator profile (default: a fresh temporary one).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.argument("invoices", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def demo(profile, as_json, invoices):
    """Start the emulator, seal invoices (default: the two samples) and verify the journal."""
    from hostd.demo import run_demo

    try:
        result = run_demo(profile, list(invoices))
    except HostdError as exc:
        _fail(exc, as_json)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for sealed in result["sealed"]:
        click.echo("sealed %-28s %s  auth %s  at %s" % (sealed["fiscal_number"], sealed["file"],
                                                       sealed["auth_code"], sealed["timestamp"]))
        click.echo("  qr: %s" % sealed["qr_payload"])
    summary = result["journal"]
    click.echo("journal verified: %d records, %d invoices, counter %d, head %s"
               % (summary["records"], summary["invoices"], summary["counter"], summary["last_hash"]))
    click.echo("device %s, profile %s" % (summary["device_id"], result["profile"]))


def samples_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "samples")
