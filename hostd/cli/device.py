"""``fiscal emulator``, ``fiscal daemon`` and ``fiscal up``: running a device and the service."""

import json
import os
import sys

import click

from hostd.cli.common import AuthorityDir, authority_public_key, fail, read_token, socket_option
from hostd.errors import HostdError

LEVELS = ("debug", "info", "warning", "error")   # hostd/daemon/logs.py LEVELS (the CLI imports no daemon code eagerly)


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
@click.option("--authority", "authority_dir", default=None, type=AuthorityDir(),
              help="Pin the authority of this folder (its authority.pub): CERTIFY refuses certificates it did not sign.")
@click.option("--json", "as_json", is_flag=True,
              help='First stdout line {"pty": PATH, "profile": DIR} instead of the bare pty path.')
@click.option("--journal-kib", type=click.IntRange(min=32), default=None,
              help="Journal (flash) size of a new profile in KiB, a multiple of 4 [default: 2048]; an existing "
                   "profile keeps its size.")
@click.option("--tax-profile", default=None, metavar="FILE",
              help="Country tax profile to install (a JSON file, or a shipped name: seed-tg, drc-dgi) "
                   "[default: seed-tg for a new profile]; refused once an invoice is sealed under another.")
def emulator(profile, seed, cut_after, cut_bytes, fail_program, max_pending, nonce_ttl, exit_with_parent,
             factory_fresh, authority_dir, as_json, journal_kib, tax_profile):
    """Run the fiscal core on a pty; print the pty path as the first stdout line."""
    from device.emu_flash import ProfileError
    from device.emulator import ProfileMismatch, TaxProfileRefused, journal_size, pin_authority, serve
    from protocol import profile_host
    from protocol.errors import FiscalError

    if journal_kib is not None and journal_kib % 4:
        raise click.BadParameter("must be a multiple of 4", param_hint="--journal-kib")
    try:
        journal_size(profile, journal_kib)
    except ProfileMismatch as exc:
        click.echo("error: %s" % exc, err=True)
        sys.exit(2)

    if tax_profile is not None:
        try:
            profile_host.load_bytes(tax_profile)
        except (OSError, ValueError, FiscalError) as exc:
            raise click.BadParameter("not a tax profile: %s" % exc, param_hint="--tax-profile")
    if authority_dir is not None:
        try:
            pin_authority(profile, authority_public_key(authority_dir))
        except HostdError as exc:
            fail(exc, as_json)
    try:
        serve(profile, seed, cut_after, cut_bytes, fail_program, max_pending, nonce_ttl,
              out=_JsonFirstLine(profile) if as_json else sys.stdout,
              exit_with_parent=exit_with_parent, factory_fresh=factory_fresh, journal_kib=journal_kib,
              tax_profile=tax_profile)
    except TaxProfileRefused as exc:
        click.echo("error: %s" % exc, err=True)
        sys.exit(2)
    except ProfileError as exc:
        if as_json:
            click.echo(json.dumps({"status": "error", "code": "PROFILE_BUSY" if "in use" in str(exc) else
                                   "PROFILE_ERROR", "detail": str(exc)}))
        click.echo("error: %s" % exc, err=True)
        sys.exit(3)


class _JsonFirstLine:
    """The emulator's stdout with its one line (the pty path) as a JSON document."""

    def __init__(self, profile):
        self.profile = profile

    def write(self, text):
        sys.stdout.write(json.dumps({"pty": text.strip(), "profile": self.profile}) + "\n")

    def flush(self):
        sys.stdout.flush()


class OctalMode(click.ParamType):
    """A file mode in octal (0660), checked here so a typo is a usage error, not a traceback."""

    name = "MODE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            mode = int(value, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            self.fail("%r is not an octal file mode: give three or four octal digits such as 0660" % value, param, ctx)
        return mode


def _group(ctx, param, value):
    if value is None:
        return None
    import grp

    try:
        grp.getgrnam(value)
    except KeyError:
        raise click.BadParameter("there is no group %r: create it (sudo groupadd --system %s) or name an existing "
                                 "group" % (value, value))
    return value


def log_level_option(fn):
    return click.option("--log-level", type=click.Choice(LEVELS), default="info", show_default=True,
                        help="Log records at this level and above go to stderr (journald under systemd).")(fn)


def daemon_options(fn):
    """The options ``fiscal daemon`` and ``fiscal up`` share: tokens, the TCP listener, CORS, logs."""
    for option in reversed([
        click.option("--token-file", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="Require 'Authorization: Bearer <token>' with the token in this file (one token, "
                          "for every outlet or for --outlet)."),
        click.option("--tokens-file", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="Tokens scoped to outlets, one '<token> <outlet>[,<outlet>...]' or '<token> *' per "
                          "line; reread on SIGHUP (README 'Tokens file')."),
        click.option("--listen", default=None, metavar="HOST:PORT",
                     help="Also serve HTTP on this TCP address (127.0.0.1:8787); always needs a token."),
        click.option("--allow-remote", is_flag=True,
                     help="Allow --listen on a non-loopback address (needs --tls-cert and --tls-key)."),
        click.option("--tls-cert", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="PEM certificate: the TCP listener speaks TLS."),
        click.option("--tls-key", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="PEM private key of --tls-cert."),
        click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
                     help="Let browser pages of this origin call the API (repeatable; never '*')."),
        click.option("--merchant", "merchant_file", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="Merchant settings (JSON): the fields orders, ERP invoices and short POS payloads leave out."),
        click.option("--accounts", "accounts_file", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="Account codes of the accounting export (JSON; README 'Integrations')."),
        click.option("--webhook-retry", type=click.FloatRange(0.05, 3600), default=2.0, show_default=True,
                     help="Seconds before the first webhook retry; each later one waits twice as long (jitter)."),
        click.option("--archive-at", type=click.IntRange(0, 95), default=50, show_default=True,
                     help="Archive the journal and let the device reclaim it at this fill (percent; 0: never)."),
        click.option("--sync-url", default=None, metavar="URL",
                     help="Upload every sealed record to this authority (fiscal authority serve; https://, or "
                          "http:// to loopback); the device then erases only what it acknowledged."),
        click.option("--sync-ca", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="PEM CA (or self-signed certificate) the authority's HTTPS certificate must chain to."),
        click.option("--sync-retries", type=click.IntRange(1, 100), default=5, show_default=True,
                     help="Refusals of one record before its invoice is 'failed' and sync stops."),
        click.option("--close-at", default="23:55", show_default=True, metavar="HH:MM|off",
                     help="Close the day (a device-signed Z) at this time, UTC; off: only on POST /api/v1/reports."),
        log_level_option,
    ]):
        fn = option(fn)
    return fn


def _daemon_settings(token_file, tokens_file, listen, allow_remote, tls_cert, tls_key, cors_origins, merchant_file,
                     accounts_file, webhook_retry, archive_at, sync_url, sync_ca, sync_retries, close_at):
    from hostd.books import accounting
    from hostd.intake import merchant as merchant_settings, strictjson

    token = None
    if token_file:
        token = read_token(token_file)
        if not token:
            raise click.BadParameter("the token file is empty: every client would be refused", param_hint="--token-file")
    merchant = accounts = None
    try:
        if merchant_file:
            merchant = merchant_settings.load(merchant_file)
    except HostdError as exc:
        raise click.BadParameter(exc.detail, param_hint="--merchant")
    try:
        if accounts_file:
            with open(accounts_file, "rb") as fh:
                accounts = accounting.load_accounts(strictjson.loads(fh.read(), field="accounts file"))
    except HostdError as exc:
        raise click.BadParameter(exc.detail, param_hint="--accounts")
    return {"token": token, "tokens_file": tokens_file, "listen": listen, "allow_remote": allow_remote,
            "tls_cert": tls_cert, "tls_key": tls_key, "cors_origins": cors_origins, "merchant": merchant,
            "accounts": accounts, "webhook_retry": webhook_retry, "archive_at": archive_at, "sync_url": sync_url,
            "sync_ca": sync_ca, "sync_retries": sync_retries, "close_at": close_at}


@click.command()
@click.option("--device", required=True,
              help="'auto' (the one fiscal board on USB), 'serial:<SERIAL>' (the board with that USB serial "
                   "number), or a path (a tty, /dev/fiscal/<SERIAL>, the emulator's pty). Looked up again at "
                   "every reconnect, so the board may be plugged in after the daemon starts.")
@socket_option
@click.option("--db", default=None, type=click.Path(dir_okay=False),
              help="SQLite store [default: STATE/fiscal.sqlite, STATE being $STATE_DIRECTORY, /var/lib/fiscal as root, "
                   "else $XDG_STATE_HOME/fiscal]; its folder holds the lock and the journal archive.")
@click.option("--group", default=None, callback=_group, help="Group that may use the socket.")
@click.option("--mode", default="0660", show_default=True, type=OctalMode(), help="Socket file mode (octal).")
@click.option("--outlet", default=None, help="Only seal invoices of this outlet_id (others get 403).")
@click.option("--prepare-share", type=click.IntRange(1, 255), default=None,
              help="Open two-phase PREPAREs one terminal may hold [default: a third of the device's slots].")
@daemon_options
def daemon(device, socket_path, db, group, mode, outlet, prepare_share, log_level, **options):
    """Own the device and serve the POS API on a unix socket (and optionally on TCP).

    Under systemd it takes its sockets from fiscal.socket (LISTEN_FDS) and tells systemd when the
    device is ready (NOTIFY_SOCKET); see `fiscal service install`. Exit codes: 2 a setting that
    cannot work; 3 another daemon serves this socket or uses this store.
    """
    from hostd.daemon.logs import setup
    from hostd.daemon.server import serve

    settings = _daemon_settings(**options)
    setup(log_level)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(socket_path)), exist_ok=True)
        serve(device, socket_path, db, mode, group, outlet=outlet, prepare_share=prepare_share, **settings)
    except HostdError as exc:
        fail(exc, False)


@click.command()
@click.option("--profile", required=True, type=click.Path(file_okay=False),
              help="Emulator profile directory; the daemon's store (fiscal.sqlite) and lock live there too.")
@socket_option
@click.option("--seed", type=int, default=None, help="Deterministic emulator entropy (tests and demos).")
@click.option("--journal-kib", type=click.IntRange(min=32), default=None,
              help="Journal size of a new profile in KiB, a multiple of 4 [default: 2048].")
@click.option("--db", default=None, type=click.Path(dir_okay=False),
              help="SQLite store [default: PROFILE/fiscal.sqlite]; its folder holds the lock and the archive.")
@daemon_options
@click.option("--json", "as_json", is_flag=True, help="The 'serving' line on stdout as one JSON document.")
def up(profile, socket_path, seed, journal_kib, db, log_level, as_json, **options):
    """The emulator plus the daemon, with sensible defaults; restarts the emulator if it dies."""
    from hostd.daemon.logs import setup
    from hostd.daemon.supervisor import run_up

    if journal_kib is not None and journal_kib % 4:
        raise click.BadParameter("must be a multiple of 4", param_hint="--journal-kib")
    settings = _daemon_settings(**options)
    setup(log_level)
    try:
        run_up(profile, socket_path, seed, as_json=as_json, journal_kib=journal_kib, db_path=db, **settings)
    except HostdError as exc:
        fail(exc, as_json)
