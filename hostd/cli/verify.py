"""``fiscal verify EXPORT_FILE``: check an audit export offline, with no device and no daemon.

The checks are hostd/books/export.py's (PROTOCOL.md section 11: every record's schema, signature,
the hash chain, counters, time, totals, and the records ending exactly at the device-signed head),
plus with ``--authority`` the device certificate up to the authority key and with ``--challenge``
the head signed over the auditor's own challenge. Exit codes follow the README table: 0 the
export verifies; 1 verification failed (``error: <message naming the first bad record>`` on
stderr, or one JSON error document with ``--json``, whose ``reason`` is the VERIFY_* code); 2
usage error (bad key file or challenge).
A progress bar goes to stderr for exports of more than PROGRESS_MIN records when stderr is a
terminal and ``--json`` is off.
"""

import json
import os
import sys

import click

from hostd.cli.common import AuthorityDir

from hostd.errors import VerificationFailed
from hostd.books import signatures
from hostd.books.export import load_export, verify_export
from hostd.books.keys import load_public_key

PROGRESS_MIN = 1000


def _stderr_is_tty():
    return sys.stderr.isatty()


def _print_summary(s):
    click.echo("export verified: %d records, %d invoices, fiscal counter %d" % (s["records"], s["invoices"], s["counter"]))
    click.echo("device:    %s" % s["device_id"])
    click.echo("first:     %s" % (s["first_time"] or "clock never set"))
    click.echo("last:      %s" % (s["last_time"] or "clock never set"))
    click.echo("records:   %d to %d%s" % (s["first_seq"], s["last_seq"],
                                          "" if s["first_seq"] <= 1 else " (from a checkpoint)"))
    click.echo("head hash: %s" % s["last_hash"])
    click.echo("head:      signed by the device at %s%s" % (s["head_time"] or "clock never set",
                                                         ", challenge %s" % s["challenge"] if s["challenge"] else ""))
    if s["key_source"] == "file":
        click.echo("key:       the key in the export file (pass --pubkey to check against your own copy)")
    else:
        click.echo("key:       given with --pubkey (same as the key in the file)")
    if s["certificate"]:
        click.echo("cert:      %s" % s["certificate"])
    click.echo("exported:  %s" % s["exported_at"])


def _fail(exc, as_json):
    index = getattr(exc, "index", None)
    if as_json:
        click.echo(json.dumps({"status": "error", "code": exc.code, "detail": exc.detail,
                               "reason": getattr(exc, "reason", "VERIFY_EXPORT"),
                               "record": None if index is None else index + 1}))
    else:
        click.echo("error: %s" % exc.detail, err=True)
    sys.exit(exc.exit_code)


@click.command("verify")
@click.argument("export_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--receipt", type=click.Path(exists=True, dir_okay=False),
              help="Verify one receipt instead of an export: the sealed answer (JSON) or its record (hex).")
@click.option("--proof", type=click.Path(exists=True, dir_okay=False),
              help="With --receipt: its inclusion proof (GET /api/v1/invoices/{fiscal_number}/proof).")
@click.option("--closure", type=click.Path(exists=True, dir_okay=False),
              help="With --receipt: the Z closure (its bundle from GET /api/v1/reports/{id}/download, or the record).")
@click.option("--pubkey", type=click.Path(exists=True, dir_okay=False),
              help="Device public key to trust instead of the export's (raw, hex or PEM).")
@click.option("--authority", type=AuthorityDir(),
              help="Authority folder (its authority.pub): the export's device certificate must chain to it.")
@click.option("--challenge", default=None, metavar="HEX",
              help="The challenge (hex, up to 64 bytes) the export's signed head must carry.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def verify(export_file, receipt, proof, closure, pubkey, authority, challenge, as_json):
    """Verify an audit export offline: signatures, hash chain, counters, and nothing cut off the end.
    With --receipt, --proof and --closure: one receipt against a signed daily closure, no journal."""
    key = auth = None
    given = [n for n, v in (("--receipt", receipt), ("--proof", proof), ("--closure", closure)) if v]
    if given and len(given) != 3:
        raise click.UsageError("--receipt, --proof and --closure go together")
    if given and (export_file or challenge):
        raise click.UsageError("give an export file or --receipt/--proof/--closure, not both")
    if not given and not export_file:
        raise click.UsageError("give an export file, or --receipt, --proof and --closure")
    authority = None if authority is None else os.path.join(authority, "authority.pub")
    if challenge is not None:
        try:
            challenge = bytes.fromhex(challenge)
        except ValueError:
            raise click.BadParameter("not hex", param_hint="--challenge")
        if len(challenge) > 64:
            raise click.BadParameter("at most 64 bytes", param_hint="--challenge")
    for path, hint in ((pubkey, "--pubkey"), (authority, "--authority")):
        if path is not None:
            try:
                loaded = load_public_key(path)
            except VerificationFailed as exc:
                raise click.BadParameter(exc.detail, param_hint=hint)
            key, auth = (loaded, auth) if hint == "--pubkey" else (key, loaded)
    if given:
        _verify_receipt(receipt, proof, closure, key, auth, as_json)
        return
    try:
        with open(export_file, "rb") as fh:
            doc = load_export(fh.read())
        count = len(doc["records"])
        show = count > PROGRESS_MIN and not as_json and _stderr_is_tty()
        with click.progressbar(length=count, label="verifying", file=sys.stderr,
                               hidden=not show, show_pos=True) as bar:
            done = [0]

            def progress(n):   # never backwards: a refused export is walked again from the start
                if n > done[0]:
                    bar.update(n - done[0])
                    done[0] = n
            summary = verify_export(doc, key, progress, auth, challenge, signatures.workers())
    except VerificationFailed as exc:
        _fail(exc, as_json)
    if as_json:
        out = {"status": "ok"}
        out.update(summary)
        click.echo(json.dumps(out, indent=2, sort_keys=True))
    else:
        _print_summary(summary)


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def _verify_receipt(receipt, proof, closure, key, auth, as_json):
    """One receipt against a Z closure (hostd/books/proofs.py). The key: --pubkey, else the
    bundle's certificate checked with --authority, else the bundle's key (said so)."""
    from hostd.books import proofs
    from hostd.books.keys import verify_certificate
    from protocol import cert

    try:
        closure_rec, device = proofs.read_closure(_read(closure))
        source = "file"
        if key is None and auth is not None:
            if not device or not device.get("certificate"):
                raise VerificationFailed("--authority needs a closure bundle that carries the device certificate")
            fields = verify_certificate(bytes.fromhex(device["certificate"]), auth)
            key, source = bytes(fields[cert.C_PUBLIC_KEY]), "certificate"
        elif key is not None:
            source = "pubkey"
        elif device and device.get("public_key"):
            key = bytes.fromhex(device["public_key"])
        else:
            raise VerificationFailed("no device key: give --pubkey (the closure file is a bare record)")
        summary = proofs.verify_receipt(proofs.read_receipt(_read(receipt)), proofs.read_proof(_read(proof)),
                                        closure_rec, key)
    except VerificationFailed as exc:
        _fail(exc, as_json)
    summary["key_source"] = source
    if as_json:
        out = {"status": "ok"}
        out.update(summary)
        click.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    click.echo("receipt verified: %s (record %d) is in the Z closure of %s (record %d)"
               % (summary["fiscal_number"], summary["seq"], summary["closure_period"], summary["closure_seq"]))
    click.echo("merkle root:  %s" % summary["merkle_root"])
    click.echo("closure hash: %s" % summary["closure_hash"])
    click.echo("key:          %s" % {"pubkey": "given with --pubkey", "certificate": "the bundle's certificate, "
                                     "checked with --authority", "file": "the key in the closure bundle (pass "
                                     "--pubkey or --authority to check against your own)"}[source])
