"""``fiscal emulator``, ``fiscal daemon`` and ``fiscal up``: running a device and the service."""

import os
import sys

import click

from hostd.cli.common import fail, read_token, socket_option
from hostd.errors import HostdError


@click.command()
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
@click.option("--journal-kib", type=click.IntRange(min=32), default=None,
              help="Journal (flash) size of a new profile in KiB, a multiple of 4 [default: 2048]; an existing "
                   "profile keeps its size.")
def emulator(profile, seed, cut_after, cut_bytes, fail_program, max_pending, nonce_ttl, exit_with_parent,
             factory_fresh, authority_pub, journal_kib):
    """Run the fiscal core on a pty; print the pty path as the first stdout line."""
    from device.emu_flash import ProfileBusy
    from device.emulator import ProfileMismatch, journal_size, pin_authority, serve

    if journal_kib is not None and journal_kib % 4:
        raise click.BadParameter("must be a multiple of 4", param_hint="--journal-kib")
    try:
        journal_size(profile, journal_kib)
    except ProfileMismatch as exc:
        click.echo("error: %s" % exc, err=True)
        sys.exit(2)

    if authority_pub is not None:
        from hostd.books.keys import load_public_key

        try:
            pin_authority(profile, load_public_key(authority_pub))
        except HostdError as exc:
            fail(exc, False)
    try:
        serve(profile, seed, cut_after, cut_bytes, fail_program, max_pending, nonce_ttl,
              exit_with_parent=exit_with_parent, factory_fresh=factory_fresh, journal_kib=journal_kib)
    except ProfileBusy as exc:
        click.echo("error: %s" % exc, err=True)
        sys.exit(3)


@click.command()
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
    from hostd.daemon.server import serve

    token = read_token(token_file) if token_file else None
    os.makedirs(os.path.dirname(os.path.abspath(socket_path)), exist_ok=True)
    serve(device, socket_path, db, int(mode, 8), group, token, outlet)


@click.command()
@click.option("--profile", required=True, type=click.Path(file_okay=False), help="Emulator profile directory.")
@socket_option
@click.option("--seed", type=int, default=None, help="Deterministic emulator entropy (tests and demos).")
def up(profile, socket_path, seed):
    """The emulator plus the daemon, with sensible defaults; restarts the emulator if it dies."""
    from hostd.daemon.supervisor import run_up

    run_up(profile, socket_path, seed)
