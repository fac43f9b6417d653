"""Whether the store can take a write right now, for ``GET /health`` (issue 13).

A store that cannot be written refuses every new seal with 503 STORE_UNAVAILABLE; a monitor
should learn that before a POS does. The check takes SQLite's write lock and gives it back at
once (``BEGIN IMMEDIATE`` + ``ROLLBACK``: nothing is written), on its own short-lived connection
with a short busy timeout so it never waits behind the device owner for long, and reports the
free space of the store's file system (a full disk passes the lock but fails the next write).
"""

import os
import sqlite3
from urllib.parse import quote

LOW_SPACE = 1 << 20   # below 1 MiB free, the next invoice may not fit


def writable(path, timeout=2.0):
    """{"writable": bool, "free_bytes": int|None, "detail": str|None} for the store at ``path``."""
    free = None
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(path)))
        free = stats.f_bavail * stats.f_frsize
    except OSError as exc:
        return {"writable": False, "free_bytes": None, "detail": "cannot stat the store's folder: %s" % exc}
    try:
        conn = sqlite3.connect("file:%s?mode=rw" % quote(os.path.abspath(path)), uri=True, timeout=timeout, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return {"writable": False, "free_bytes": free, "detail": "the store cannot be written: %s" % exc}
    if free < LOW_SPACE:
        return {"writable": False, "free_bytes": free, "detail": "only %d bytes free beside the store" % free}
    return {"writable": True, "free_bytes": free, "detail": None}
