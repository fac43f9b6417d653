"""The SDK's offline queue (issue 14; seed 003 "Offline Queue & Retry").

When the daemon or its device cannot be reached, ``Client.invoices.create`` stores the invoice as
a draft here and answers a ``Queued`` handle: an id, the Idempotency-Key, ``status = "queued"``,
and never a fiscal number, time stamp or QR, which only the device makes. ``flush`` sends the
drafts oldest first with their original bytes (so the original ``timestamp``) and their original
Idempotency-Key: a flush interrupted anywhere (even ``kill -9``) and run again seals nothing
twice, because the daemon answers a repeated key with the first answer.

Draft states: ``draft`` (stored, not yet sent), ``queued`` (waiting for the daemon),
``fiscalized`` (the daemon's sealed answer is kept), ``error`` (refused for good; the envelope is
kept). Storage is pluggable: anything with ``save(draft)``, ``list(status=None)``,
``delete(draft_id)`` and ``mark(draft_id, status, **fields)``; the default is a SQLite file whose
integrity is checked at open. A corrupt file raises OfflineQueueCorrupt after its readable
drafts were exported to a JSON file next to it; ``reset()`` then starts an empty queue.
"""

import json
import os
import shutil
import sqlite3
import time
import uuid
from typing import Any, Dict, List, Optional

from hostd.sdk.errors import OfflineQueueCorrupt

STATES = ("draft", "queued", "fiscalized", "error")
SCHEMA = """CREATE TABLE IF NOT EXISTS drafts (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, idempotency_key TEXT NOT NULL, body BLOB NOT NULL,
    created REAL NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    response TEXT, error TEXT)"""


class SQLiteStorage:
    """The default storage driver: one SQLite file (WAL, synchronous=FULL: a queued invoice
    survives a power cut)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, timeout=10)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(SCHEMA)
            verdict = self.conn.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise OfflineQueueCorrupt("offline queue %s cannot be opened: %s" % (path, exc),
                                      export=self._export_raw())
        if verdict != "ok":
            raise OfflineQueueCorrupt("offline queue %s fails its integrity check: %s" % (path, verdict),
                                      export=self._export_rows())
        for row in self.conn.execute("SELECT * FROM drafts").fetchall():
            if row["status"] not in STATES or not _json_ok(row["body"]):
                raise OfflineQueueCorrupt("offline queue %s holds a damaged draft %s" % (path, row["id"]),
                                          export=self._export_rows())

    def _export_raw(self) -> str:
        target = "%s.corrupt-%d" % (self.path, int(time.time()))
        shutil.copyfile(self.path, target)
        return target

    def _export_rows(self) -> str:
        target = "%s.export-%d.json" % (self.path, int(time.time()))
        rows = []
        for row in self.conn.execute("SELECT * FROM drafts ORDER BY seq").fetchall():
            rows.append({k: (row[k].decode("utf-8", "replace") if isinstance(row[k], bytes) else row[k])
                         for k in row.keys()})
        with open(target, "w") as fh:
            json.dump({"exported_from": self.path, "drafts": rows}, fh, indent=1)
        return target

    def save(self, draft: Dict[str, Any]) -> None:
        seq = self.conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM drafts").fetchone()[0]
        self.conn.execute("INSERT INTO drafts (id, seq, idempotency_key, body, created, status) VALUES (?, ?, ?, ?, ?, ?)",
                          (draft["id"], seq, draft["idempotency_key"], draft["body"], draft["created"], draft["status"]))

    def list(self, status: Optional[str] = None) -> List[Dict[str, Any]]:
        sql, args = "SELECT * FROM drafts", ()
        if status is not None:
            sql, args = sql + " WHERE status=?", (status,)
        return [dict(row) for row in self.conn.execute(sql + " ORDER BY seq", args).fetchall()]

    def delete(self, draft_id: str) -> None:
        self.conn.execute("DELETE FROM drafts WHERE id=?", (draft_id,))

    def mark(self, draft_id: str, status: str, **fields: Any) -> None:
        sets = ["status=?"] + ["%s=?" % k for k in sorted(fields)]
        self.conn.execute("UPDATE drafts SET %s WHERE id=?" % ", ".join(sets),
                          [status] + [fields[k] for k in sorted(fields)] + [draft_id])

    def close(self) -> None:
        self.conn.close()


def _json_ok(body: Any) -> bool:
    try:
        json.loads(body)
        return True
    except (ValueError, TypeError):
        return False


class OfflineQueue:
    def __init__(self, path: Optional[str] = None, storage: Any = None) -> None:
        if storage is None and path is None:
            raise ValueError("an offline queue needs a path or a storage driver")
        self.path = path
        self.storage = storage if storage is not None else SQLiteStorage(path)

    def add(self, body: bytes, idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """Store ``body`` as a queued draft; return the draft (its handle)."""
        draft = {"id": "draft-" + uuid.uuid4().hex, "idempotency_key": idempotency_key or "sdk-" + uuid.uuid4().hex,
                 "body": body, "created": time.time(), "status": "queued"}
        self.storage.save(draft)
        return draft

    def pending(self) -> List[Dict[str, Any]]:
        return self.storage.list("queued")

    def drafts(self) -> List[Dict[str, Any]]:
        return self.storage.list()

    @staticmethod
    def reset(path: str) -> "OfflineQueue":
        """An empty queue at ``path`` (after OfflineQueueCorrupt, whose export was kept)."""
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)
        return OfflineQueue(path)
