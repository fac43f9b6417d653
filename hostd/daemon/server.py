"""Running the daemon: the store, the device owner and the HTTP API on a unix socket.

The socket is created with mode 0660 (configurable) and, when asked, handed to a group, so POS
software in that group can connect and nobody else can (DESIGN-NOTES section 6). The daemon starts
serving before the device answers: requests then get a clear 503 DEVICE_UNAVAILABLE instead of a
refused connection, and the owner keeps trying to connect in the background.
"""

import asyncio
import grp
import os
import signal
import sys
import time
import traceback

from aiohttp import web

from hostd.api.app import Api
from hostd.errors import DeviceUnavailable
from hostd.owner.owner import Owner
from hostd.store.store import Store


async def _serve(device, socket_path, db_path, mode, group, token, outlet, ready):
    store = Store(db_path)
    owner = Owner(device, store)
    api = Api(owner, store, token=token, outlet=outlet)
    runner = web.AppRunner(api.app(), handle_signals=False, access_log=None)
    await runner.setup()
    if os.path.exists(socket_path):
        os.unlink(socket_path)   # a stale socket from a killed daemon; we are the only owner
    site = web.UnixSite(runner, socket_path)
    await site.start()
    os.chmod(socket_path, mode)
    if group is not None:
        os.chown(socket_path, -1, grp.getgrnam(group).gr_gid)
    owner.run(_first_connect, owner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready()
    sys.stderr.write("fiscal daemon: serving %s, device %s, store %s\n" % (socket_path, device, db_path))
    sys.stderr.flush()
    await stop.wait()
    await runner.cleanup()
    owner.close()


def _first_connect(owner):
    """Connect and reconcile as soon as the device answers; failures are only remembered."""
    try:
        owner.device(time.monotonic() + 5.0)
    except DeviceUnavailable as exc:
        owner.last_error = exc.detail
    except Exception:
        # Nobody reads this future: log the bug here rather than lose it; requests retry anyway.
        traceback.print_exc(file=sys.stderr)


def serve(device, socket_path, db_path=None, mode=0o660, group=None, token=None, outlet=None, ready=None):
    """Block serving until SIGTERM or SIGINT."""
    if db_path is None:
        db_path = os.path.join(os.path.dirname(os.path.abspath(socket_path)), "fiscal.sqlite")
    asyncio.run(_serve(device, socket_path, db_path, mode, group, token, outlet, ready))
