"""``fiscal demo``, the README's main job: the emulator plus the daemon, sealing the sample invoices over HTTP.

It runs ``fiscal up`` (emulator + daemon) as a child process on a profile, waits for its socket,
POSTs each invoice to ``/api/v1/invoices`` exactly as a POS would (the samples carry no
timestamp, so the daemon dates them as it accepts them), reads the outlet status,
downloads the audit export and verifies it offline with the device's public key, then stops
``fiscal up`` (unless ``keep`` is set).
"""

import json
import os
import tempfile
import time

import click

from hostd.boards import shipped
from hostd.books.export import load_export, verify_export
from hostd.cli.common import EXIT_FOR_HTTP, fail
from hostd.daemon.supervisor import spawn_ready, stop_process
from hostd.errors import HostdError
from hostd.sdk.transport import call_json, request

SAMPLES = ("invoice-002-services.json", "invoice-000-goods.json")


def samples_dir():
    """The sample invoices: samples/ of a checkout, or the copy in the wheel (hostd/boards/shipped.py)."""
    return str(shipped.folder("samples"))


def start_up(profile, socket_path, timeout=30.0, extra=()):
    """Start ``fiscal up`` (with ``extra`` options); return the process once its socket is served."""
    return spawn_ready(["up", "--profile", profile, "--socket", socket_path] + list(extra), "fiscal up:", "fiscal up",
                       timeout)[0]


def stop_up(proc):
    stop_process(proc, 15)


def run_demo(profile=None, files=()):
    if profile is None:
        profile = tempfile.mkdtemp(prefix="fiscal-demo-")
    files = list(files) or [os.path.join(samples_dir(), name) for name in SAMPLES]
    socket_path = os.path.join(profile, "api.sock")
    proc = start_up(profile, socket_path)
    try:
        sealed = []
        for path in files:
            with open(path, "rb") as fh:
                status, doc = call_json(socket_path, "POST", "/api/v1/invoices", fh.read(),
                                        {"Content-Type": "application/json",
                                         "Idempotency-Key": "demo-%s-%s" % (os.path.basename(path), time.time())})
            if status != 200:
                refused = HostdError("%s: %s %s" % (os.path.basename(path), doc.get("code"), doc.get("detail")),
                                     doc.get("field"))
                refused.code, refused.exit_code = doc.get("code", refused.code), EXIT_FOR_HTTP.get(status, 1)
                raise refused
            payload = doc["payload"]
            payload["file"] = os.path.basename(path)
            sealed.append(payload)
        status_doc = call_json(socket_path, "GET", "/api/v1/outlets/local/status")[1]["payload"]
        export = request(socket_path, "GET", "/api/v1/audit/export")[2]
    finally:
        stop_up(proc)
    export_path = os.path.join(profile, "journal-export.json")
    with open(export_path, "wb") as fh:
        fh.write(export)
    summary = verify_export(load_export(export))
    return {"profile": profile, "socket": socket_path, "sealed": sealed, "device": status_doc,
            "export": export_path, "journal": summary}


@click.command()
@click.option("--profile", default=None, type=click.Path(file_okay=False),
              help="Emulator profile (default: a fresh temporary one).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.argument("invoices", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def demo(profile, as_json, invoices):
    """Run `fiscal up`, seal invoices over its socket (default: the two samples), verify the export."""
    try:
        result = run_demo(profile, list(invoices))
    except HostdError as exc:
        fail(exc, as_json)
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
