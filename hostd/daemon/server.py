"""Running the daemon: the store, the device owner and the HTTP API on a unix socket.

The socket is created with mode 0660 (configurable) and, when asked, handed to a group, so POS
software in that group can connect and nobody else can (DESIGN-NOTES section 6). The daemon starts
serving before the device answers: requests then get a clear 503 DEVICE_UNAVAILABLE instead of a
refused connection, and the owner keeps trying to connect in the background. The listener's
limits (header timeout, connection cap below the fd limit, quiet accept errors) are
hostd/daemon/connections.py's.
"""

import asyncio
import grp
import os
import signal
import socket
import sys
import time
import traceback

from aiohttp import web

from hostd.api.app import Api
from hostd.daemon.connections import (BACKLOG, HEADER_TIMEOUT, MAX_FIELD, MAX_HEADERS, MAX_LINE, Connections,
                                      GuardedSite, QuietAcceptErrors, connection_cap)
from hostd.daemon.webhooks import Dispatcher
from hostd.errors import DeviceUnavailable
from hostd.owner.owner import Owner
from hostd.store.store import Store


def _unix_listener(path, mode, group):
    """A listening unix socket at ``path`` with ``mode`` and ``group``."""
    if os.path.exists(path):
        os.unlink(path)   # a stale socket from a killed daemon; we are the only owner
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, mode)
    if group is not None:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


async def _serve(device, socket_path, db_path, mode, group, token, outlet, ready, prepare_share, merchant, accounts,
                 webhook_retry):
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(QuietAcceptErrors(loop))
    cap = connection_cap()
    store = Store(db_path)
    owner = Owner(device, store, prepare_share=prepare_share)
    api = Api(owner, store, token=token, outlet=outlet, merchant=merchant, accounts=accounts)
    connections = Connections(cap)
    runner = web.AppRunner(api.app(extra_middlewares=[connections.middleware]), handle_signals=False,
                           access_log=None, keepalive_timeout=HEADER_TIMEOUT, max_line_size=MAX_LINE,
                           max_field_size=MAX_FIELD, max_headers=MAX_HEADERS)
    await runner.setup()
    site = GuardedSite(runner, _unix_listener(socket_path, mode, group), connections)
    await site.start()
    dispatcher = Dispatcher(store, base=webhook_retry, owner=owner)
    owner.on_event = dispatcher.wake
    sending = asyncio.ensure_future(dispatcher.run())
    sending.add_done_callback(_report_crash)
    owner.run(_first_connect, owner)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready()
    sys.stderr.write("fiscal daemon: serving %s, device %s, store %s (at most %d connections)\n"
                     % (socket_path, device, db_path, cap))
    sys.stderr.flush()
    await stop.wait()
    sending.cancel()
    await asyncio.gather(sending, return_exceptions=True)
    await runner.cleanup()
    owner.close()


def _report_crash(task):
    """The dispatcher never ends by itself: if it does, that is a bug, and the log must say so."""
    if not task.cancelled() and task.exception() is not None:
        sys.stderr.write("fiscal daemon: the webhook dispatcher stopped: %r\n" % (task.exception(),))


def _first_connect(owner):
    """Connect and reconcile as soon as the device answers; failures are only remembered."""
    try:
        owner.device(time.monotonic() + 5.0)
    except DeviceUnavailable as exc:
        owner.last_error = exc.detail
    except Exception:
        # Nobody reads this future: log the bug here rather than lose it; requests retry anyway.
        traceback.print_exc(file=sys.stderr)


def serve(device, socket_path, db_path=None, mode=0o660, group=None, token=None, outlet=None, ready=None,
          prepare_share=None, merchant=None, accounts=None, webhook_retry=2.0):
    """Block serving until SIGTERM or SIGINT."""
    if db_path is None:
        db_path = os.path.join(os.path.dirname(os.path.abspath(socket_path)), "fiscal.sqlite")
    asyncio.run(_serve(device, socket_path, db_path, mode, group, token, outlet, ready, prepare_share, merchant,
                       accounts, webhook_retry))
