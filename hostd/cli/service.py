"""``fiscal service install``: run the daemon as a systemd service (hostd/daemon/units.py)."""

import json
import os
import sys

import click

from hostd.cli.common import fail
from hostd.errors import HostdError


@click.group()
def service():
    """Run the daemon under systemd: units, a system user, udev rules."""


@service.command("install")
@click.option("--dry-run", is_flag=True, help="Print what would be written and run; change nothing.")
@click.option("--root", default="/", show_default=True, type=click.Path(file_okay=False),
              help="Install the files under this directory instead of / (image builds, tests); runs no command.")
@click.option("--device", default="auto", show_default=True,
              help="The daemon's --device in fiscal.service: auto, serial:<SERIAL>, or /dev/fiscal/<SERIAL>.")
@click.option("--fiscal", "program", default=None, type=click.Path(dir_okay=False),
              help="The fiscal program the service runs [default: this one].")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def install_cmd(dry_run, root, device, program, as_json):
    """Put fiscal.service, fiscal.socket, the sysusers.d file and the udev rules in place.

    Then: systemctl enable --now fiscal.socket fiscal.service. Exit codes: 0 done; 2 cannot
    work as asked (not root, a command failed).
    """
    from hostd.daemon.units import install, plan

    try:
        files, commands, warnings = plan(root, program, device)
        if not dry_run and os.path.abspath(root) == "/" and os.geteuid() != 0:
            raise click.UsageError("installing into / needs root: sudo %s service install (or --dry-run, "
                                   "or --root DIR)" % sys.argv[0])
        done = [] if dry_run else install(files, commands)
    except HostdError as exc:
        fail(exc, as_json)
    if dry_run:
        done = [(c, "would run") for c in commands]
    for text in warnings:
        click.echo("warning: %s" % text, err=True)
    if as_json:
        click.echo(json.dumps({"status": "ok", "dry_run": dry_run, "root": root, "warnings": warnings,
                               "files": [{k: v for k, v in f.items() if k != "data"} for f in files],
                               "commands": [{"command": c, "outcome": o} for c, o in done]}, indent=2))
        return
    for f in files:
        click.echo("%s %-45s from %s (%d bytes)" % ("would write" if dry_run else "wrote", f["dest"], f["source"],
                                                    f["bytes"]))
    for command, outcome in done:
        click.echo("%-11s %s%s" % ("would run" if dry_run else "ran", " ".join(command),
                                   "" if outcome in ("ok", "would run") else " (%s)" % outcome))
    if not dry_run and os.path.abspath(root) == "/":
        click.echo("next: systemctl enable --now fiscal.socket fiscal.service; POS users join group fiscal-pos")
