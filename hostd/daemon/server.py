"""Running the daemon: the store, the device owner and the HTTP API on its listening sockets.

The unix socket is created with mode 0660 (configurable) and, when asked, handed to a group, so POS
software in that group can connect and nobody else can (DESIGN-NOTES section 6); it is probed
before it is bound and never taken from a daemon that answers on it (hostd/daemon/listeners.py).
Under systemd the sockets may come from ``fiscal.socket`` instead (sd_listen_fds(3),
hostd/daemon/systemd.py). One daemon per store: ``fiscal.lock`` in the store's folder
(hostd/daemon/lock.py). An optional TCP listener (``--listen``) serves browser-based POS; it
always needs a bearer token.

The daemon starts serving before the device answers: requests then get a clear 503
DEVICE_UNAVAILABLE instead of a refused connection, and a watcher tries to connect every
``RETRY`` seconds. systemd hears READY=1 once the device handshake is done (the owner's first
successful connect), STATUS= lines as the device comes and goes, and WATCHDOG=1 at half the
watchdog interval from the event loop, so a hung loop is restarted. SIGTERM and SIGINT stop it
and remove the socket file; SIGHUP rereads the tokens file. Every listener goes through the same
GuardedSite and Connections (hostd/daemon/connections.py): header timeout, connection cap, quiet
accept errors, parser errors in the envelope.
"""

import asyncio
import logging
import os
import signal
import socket
import time

from aiohttp import web

from hostd.api.app import Api
from hostd.api.auth import Tokens
from hostd.daemon.connections import (HEADER_TIMEOUT, MAX_FIELD, MAX_HEADERS, MAX_LINE, Connections, GuardedSite,
                                      QuietAcceptErrors, connection_cap)
from hostd.daemon.listeners import UnixListener, check_remote, describe, parse_address, tcp_listener, tls_context
from hostd.daemon.closer import DEFAULT_AT, Closer, parse_at
from hostd.daemon.lock import StoreLock, state_dir
from hostd.daemon.logs import AccessLog
from hostd.daemon.systemd import Notifier, listen_fds
from hostd.daemon.sync import Syncer, target as sync_target
from hostd.daemon.webhooks import Dispatcher
from hostd.errors import ConfigError, DeviceUnavailable
from hostd.owner.owner import Owner
from hostd.store.archive import Archive
from hostd.store.store import Store

log = logging.getLogger("fiscal.daemon")
RETRY = 2.0   # seconds between connection attempts while the device is away


class Settings:
    """What ``fiscal daemon`` was asked for, checked before anything is opened."""

    def __init__(self, device, socket_path, db_path=None, mode=0o660, group=None, token=None, outlet=None,
                 prepare_share=None, tokens_file=None, listen=None, tls_cert=None, tls_key=None,
                 allow_remote=False, cors_origins=(), merchant=None, accounts=None, webhook_retry=2.0,
                 archive_at=50, sync_url=None, sync_ca=None, sync_retries=5, close_at=DEFAULT_AT):
        self.device, self.socket_path, self.mode, self.group = device, socket_path, mode, group
        # The store's permanent home (issue 10): never the socket's runtime folder, cleared at logout.
        self.db_path = db_path or os.path.join(state_dir(), "fiscal.sqlite")
        self.archive_at = archive_at   # percent of the journal space; 0 switches archiving off
        self.outlet, self.prepare_share, self.tokens_file = outlet, prepare_share, tokens_file
        self.allow_remote, self.cors_origins = allow_remote, tuple(cors_origins)
        self.merchant, self.accounts, self.webhook_retry = merchant, accounts, webhook_retry
        # The authority (issue 12): None, or (base URL, client TLS context).
        self.sync = sync_target(sync_url, sync_ca) if sync_url else None
        if sync_ca and not sync_url:
            raise ConfigError("--sync-ca without --sync-url", field="--sync-ca")
        self.sync_retries = sync_retries
        self.close_at = parse_at(close_at)   # minutes after midnight UTC of the day's Z, or None
        if tokens_file is not None and token is not None:
            raise ConfigError("give --tokens-file or --token-file, not both", field="--tokens-file")
        self.tokens = Tokens.load(tokens_file) if tokens_file else (Tokens.single(token, outlet) if token else None)
        self.tls = tls_context(tls_cert, tls_key)
        self.listen = parse_address(listen) if listen else None
        if self.listen is not None:
            self.check_tcp(self.listen[0])

    def check_tcp(self, host):
        check_remote(host, self.allow_remote, self.tls)
        if self.tokens is None:
            raise ConfigError("a TCP listener always needs a bearer token: give --tokens-file F (or --token-file F)",
                              field="--listen")


def serve(device, socket_path, db_path=None, mode=0o660, group=None, token=None, outlet=None, ready=None,
          prepare_share=None, **more):
    """Block serving until SIGTERM or SIGINT (``more``: the Settings of the TCP listener, tokens,
    merchant settings, accounts and webhook retries)."""
    settings = Settings(device, socket_path, db_path, mode, group, token, outlet, prepare_share, **more)
    os.makedirs(os.path.dirname(os.path.abspath(settings.db_path)), exist_ok=True)
    lock = StoreLock(os.path.dirname(os.path.abspath(settings.db_path))).acquire(settings.db_path)
    unix = None
    sockets = []
    try:
        inherited = listen_fds()
        for sock in inherited:
            if sock.family != socket.AF_UNIX:
                settings.check_tcp(sock.getsockname()[0])
            sockets.append(sock)
        if not inherited:
            unix = UnixListener(socket_path, mode, group)
            sockets.append(unix.open())
        if settings.listen is not None:
            sockets.append(tcp_listener(*settings.listen))
        asyncio.run(_serve(settings, sockets, ready, bool(inherited)))
    finally:
        for sock in sockets:
            sock.close()
        if unix is not None:
            unix.remove()
        lock.release()


async def _serve(settings, sockets, ready, activated):
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(QuietAcceptErrors(loop))
    notifier = Notifier()
    notifier.status("starting")
    cap = connection_cap()
    store = Store(settings.db_path)
    archive = None
    if settings.archive_at:
        archive = Archive(store, os.path.join(os.path.dirname(os.path.abspath(settings.db_path)), "archive"))
    syncer = None
    owner = Owner(settings.device, store, prepare_share=settings.prepare_share, archive=archive,
                  archive_at=settings.archive_at * 10000,
                  bundles_dir=os.path.join(os.path.dirname(os.path.abspath(settings.db_path)), "closures"))
    dispatcher = Dispatcher(store, base=settings.webhook_retry, owner=owner)
    if settings.sync is not None:
        syncer = Syncer(store, settings.sync[0], settings.sync[1], settings.sync_retries, base=settings.webhook_retry,
                        archive=archive, on_event=dispatcher.wake)
        owner.erase_limit = syncer.log.acked_seq   # the device erases only what the authority holds
    owner.on_event = _both(dispatcher.wake, syncer.wake) if syncer else dispatcher.wake
    api = Api(owner, store, outlet=settings.outlet, tokens=settings.tokens, cors_origins=settings.cors_origins,
              merchant=settings.merchant, accounts=settings.accounts, sync=syncer)
    connections = Connections(cap)
    runner = web.AppRunner(api.app(extra_middlewares=[connections.middleware]), handle_signals=False,
                           access_log_class=AccessLog, access_log=logging.getLogger("fiscal.access"),
                           keepalive_timeout=HEADER_TIMEOUT, max_line_size=MAX_LINE, max_field_size=MAX_FIELD,
                           max_headers=MAX_HEADERS)
    await runner.setup()
    for sock in sockets:
        tls = settings.tls if sock.family != socket.AF_UNIX else None
        await GuardedSite(runner, sock, connections, ssl_context=tls).start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, api, settings)
    names = ", ".join(describe(s) + (" (TLS)" if settings.tls and s.family != socket.AF_UNIX else "") for s in sockets)
    log.info("serving %s%s, device %s, store %s (at most %d connections)", names,
             " (socket-activated)" if activated else "", settings.device, settings.db_path, cap)
    if ready is not None:
        ready()
    tasks = [asyncio.ensure_future(_watch_device(owner, notifier, names)), asyncio.ensure_future(dispatcher.run())]
    if settings.close_at is not None:
        api.closer = Closer(owner, settings.close_at)
        tasks.append(asyncio.ensure_future(api.closer.run()))
    if syncer is not None:
        tasks.append(asyncio.ensure_future(syncer.run()))
    for task in tasks[1:]:
        task.add_done_callback(_report_crash)
    interval = notifier.watchdog_interval()
    if interval:
        tasks.append(asyncio.ensure_future(_watchdog(notifier, interval)))
    try:
        await stop.wait()
    finally:
        notifier.stopping()
        log.info("stopping")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
        owner.close()
        notifier.close()


def _both(first, second):
    def wake():
        first()
        second()
    return wake


def _report_crash(task):
    """The webhook dispatcher and the sync agent never end by themselves: if one does, that is a
    bug, and the log says so."""
    if not task.cancelled() and task.exception() is not None:
        log.error("a background task stopped: %r", task.exception())


def _reload(api, settings):
    """SIGHUP: reread the tokens file; a file that does not parse leaves the old tokens in force."""
    if settings.tokens_file is None:
        log.info("SIGHUP: no --tokens-file to reread")
        return
    try:
        api.tokens = Tokens.load(settings.tokens_file)
    except ConfigError as exc:
        log.error("SIGHUP: %s; the %d tokens read before stay in force", exc.detail, len(api.tokens))
        return
    log.info("SIGHUP: %d tokens read from %s", len(api.tokens), settings.tokens_file)


def _connect_once(owner):
    """One connection attempt on the owner thread (a no-op while connected)."""
    if owner.client is None:
        try:
            owner.device(time.monotonic())
        except DeviceUnavailable as exc:
            owner.last_error = exc.detail
    return owner.client is not None


async def _watch_device(owner, notifier, names):
    """Connect as soon as the device answers; READY=1 after the first handshake; STATUS= on change."""
    ready = False
    said = None
    while True:
        try:
            up = await asyncio.wrap_future(owner.run(_connect_once, owner))
        except Exception:
            log.exception("connecting to the device failed with a bug; trying again in %.0f s", RETRY)
            up = False
        if up:
            info = owner.info or {}
            text = "serving %s; device %s, counter %s" % (names, info.get("device_id"), info.get("counter"))
        else:
            text = "serving %s; waiting for the device: %s" % (names, owner.last_error or "not connected")
        if up and not ready:
            ready = True
            notifier.ready(text)
            said = text
        elif text != said:
            if not up and said is None:
                log.warning("device not available yet: %s", owner.last_error)
            notifier.status(text)
            said = text
        await asyncio.sleep(RETRY)


async def _watchdog(notifier, interval):
    """WATCHDOG=1 from the event loop every ``interval`` (half of WATCHDOG_USEC)."""
    while True:
        notifier.ping()
        await asyncio.sleep(interval)
