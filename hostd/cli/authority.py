"""``fiscal authority ...`` and ``fiscal board provision``: the device-identity commands.

Exit codes as in hostd/cli/common.py: 0 done; 1 a certificate check failed; 2 usage or bad input (no
authority key, an authority key already there); 3 the device is unavailable (not found, busy with
the daemon, permissions); 5 the device refused (for instance KEY_MISSING).
"""

import hashlib
import json

import click

from hostd.cli.common import AuthorityDir
from hostd.cli.device import log_level_option
from hostd.cli.common import fail as _fail
from hostd.errors import HostdError


@click.group()
def authority():
    """A development certificate authority for device keys (production keeps this key in an HSM),
    and the authority's receiving side of the sync (`fiscal authority serve`)."""


@authority.command("init")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False),
              help="Directory for authority.key (mode 0600) and authority.pub.")
@click.option("--json", "as_json", is_flag=True)
def authority_init(directory, as_json):
    """Make the authority key pair; never overwrites an existing one."""
    from hostd.boards import authority as ca

    try:
        auth_id, public = ca.init(directory)
    except HostdError as exc:
        _fail(exc, as_json)
    doc = {"authority": auth_id, "public_key": public.hex(), "directory": directory}
    click.echo(json.dumps(doc, indent=2) if as_json else
               "authority %s created in %s (give authority.pub to verifiers)" % (auth_id, directory))


@authority.command("issue")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False))
@click.option("--device-id", required=True, help="The id the device reported (PROVISION / INFO).")
@click.option("--public-key", required=True, help="The device public key, 128 hex digits (X then Y).")
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False), help="Certificate file to write.")
@click.option("--json", "as_json", is_flag=True)
def authority_issue(directory, device_id, public_key, out, as_json):
    """Issue a certificate for a device key exported elsewhere (an offline provisioning station)."""
    from hostd.boards import authority as ca

    try:
        key = bytes.fromhex(public_key)
    except ValueError:
        raise click.BadParameter("not hex", param_hint="--public-key")
    try:
        data = ca.issue(directory, device_id, key)
    except HostdError as exc:
        _fail(exc, as_json)
    with open(out, "wb") as fh:
        fh.write(data)
    if as_json:
        click.echo(json.dumps({"status": "ok", "device_id": device_id, "certificate": out, "bytes": len(data),
                               "sha256": hashlib.sha256(data).hexdigest()}, indent=2))
        return
    click.echo("certificate for %s written to %s (%d bytes)" % (device_id, out, len(data)))


@authority.command("serve")
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False),
              help="The authority's SQLite store of accepted records (created if missing).")
@click.option("--listen", required=True, metavar="HOST:PORT", help="Address to serve the upload API on.")
@click.option("--trust", "trusted", required=True, multiple=True, type=AuthorityDir(),
              help="Authority folder (its authority.pub) whose device certificates are accepted (repeatable).")
@click.option("--tls-cert", default=None, type=click.Path(exists=True, dir_okay=False),
              help="PEM certificate: serve HTTPS (what outlets use across a network).")
@click.option("--tls-key", default=None, type=click.Path(exists=True, dir_okay=False), help="PEM key of --tls-cert.")
@click.option("--allow-remote", is_flag=True, help="Listen on a non-loopback address (needs --tls-cert and --tls-key).")
@log_level_option
def authority_serve(db_path, listen, trusted, tls_cert, tls_key, allow_remote, log_level):
    """Receive every outlet's sealed records, verify each as `fiscal verify` does, keep them, acknowledge.

    The daemon's --sync-url points here (docs/SYNC.md). Exit 2 for a setting that cannot work.
    """
    import os

    from hostd.authority.server import serve
    from hostd.books.keys import authority_id, load_public_key
    from hostd.daemon.listeners import check_remote, parse_address, tls_context
    from hostd.daemon.logs import setup

    try:
        keys = {}
        for folder in trusted:
            key = load_public_key(os.path.join(folder, "authority.pub"))
            keys[authority_id(key)] = key
        host, port = parse_address(listen)
        context = tls_context(tls_cert, tls_key)
        check_remote(host, allow_remote, context)
        os.makedirs(os.path.dirname(os.path.abspath(db_path)), exist_ok=True)
    except HostdError as exc:
        _fail(exc, False)
    setup(log_level)
    serve(db_path, host, port, keys, context)


@click.command("provision")
@click.option("--device", "device_spec", default="auto", show_default=True,
              help="The fiscal port: auto, serial:<SERIAL>, or a path (an emulator pty).")
@click.option("--authority", "authority_dir", required=True, type=AuthorityDir(need_key=True),
              help="Authority folder (fiscal authority init): authority.key signs the certificate.")
@click.option("--tax-profile", default=None, metavar="FILE",
              help="Country tax profile to install (a JSON file, or a shipped name: seed-tg, drc-dgi) "
                   "[default: seed-tg when the device has none].")
@click.option("--json", "as_json", is_flag=True)
def provision(device_spec, authority_dir, tax_profile, as_json):
    """Make the device key inside the device, certify it, store the certificate and the tax profile."""
    from hostd.link.discovery import resolve
    from hostd.boards.provision import provision as run
    from protocol import profile_host
    from protocol.errors import FiscalError

    if tax_profile is not None:
        try:
            profile_host.load_bytes(tax_profile)
        except (OSError, ValueError, FiscalError) as exc:
            raise click.BadParameter("not a tax profile: %s" % exc, param_hint="--tax-profile")
    try:
        summary = run(resolve(device_spec), authority_dir, tax_profile=tax_profile)
    except HostdError as exc:
        _fail(exc, as_json)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    click.echo("device %s on %s" % (summary["device_id"], summary["port"]))
    click.echo("key:         %s" % ("made now, inside the device" if summary["key_created"] else "already there"))
    click.echo("public key:  %s" % summary["public_key"])
    click.echo("certificate: %s by %s" % ("stored now" if summary["certificate_stored"] else "already held",
                                        summary["authority"]))
    click.echo("tax profile: %s (%s)" % (summary["tax_profile"], "installed now" if summary["tax_profile_installed"]
                                         else "already there"))
