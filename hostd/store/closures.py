"""Closures, reports and the technical log in the store (issue 11; step 10 of hostd/store/schema.py).

Why these tables, when the journal mirror already holds every record:

- ``closures``: the CLOSURE records (Z, M, Y) found by kind and period, with the seq range each
  covers, so a monthly closure finds its days, a proof finds its day, and a report its record,
  without decoding the journal.
- ``reports``: one row per report a user asked for or the daemon made (X, Z, M, Y, A): its id, the
  ledger hash it is bound to (a closure's record hash, or the journal head an X or A ends at), the
  bundle file in the state directory and that file's SHA-256. ``idempotency_key`` makes a repeated
  ``POST /api/v1/reports`` answer the report it made the first time.
- ``technical``: every journal record that is not an invoice (power-up, clock, fault and fill
  events, checkpoints, closures) by time, for ``GET /api/v1/events`` (issue 11 point 6).

Both of the latter are filled from the mirror by the owner (hostd/owner/closing.py ``note``), in
order, from the ``noted_seq`` mark: what one run noted is never noted twice.
"""

import json
import os
import sqlite3

from hostd.store import outbox
from hostd.store.files import write_durably


def write_file(directory, name, data, digest):
    """Write a report file durably with a ``sha256sum -c`` sidecar; return its path."""
    path = os.path.join(directory, name)
    write_durably(path, data)
    write_durably(path + ".sha256", ("%s  %s\n" % (digest, name)).encode())
    return path


class Closures:
    def __init__(self, store):
        self.store = store

    def _conn(self):
        return self.store.conn()

    # -- noting the mirror --------------------------------------------------------------------
    def note(self, closures, technical, last_seq):
        """File ``closures`` [(seq, kind, period, record, hash, first, last, time)] and ``technical``
        [(seq, type, time, name, detail)] and move the ``noted_seq`` mark to ``last_seq``, in one
        transaction."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR IGNORE INTO closures (seq, kind, period, record, hash, first_seq, last_seq, "
                             "time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", closures)
            conn.executemany("INSERT OR IGNORE INTO technical (seq, type, time, name, detail) VALUES (?, ?, ?, ?, ?)",
                             technical)
            conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('noted_seq', ?)", (json.dumps(last_seq),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def mirror_after(self, seq, limit):
        """(seq, record, hash) of up to ``limit`` mirrored records from ``seq`` on."""
        return self._conn().execute("SELECT seq, record, hash FROM journal WHERE seq >= ? ORDER BY seq LIMIT ?",
                                    (seq, limit)).fetchall()

    def noted_seq(self):
        return self.store.meta("noted_seq", 0)

    # -- closures -------------------------------------------------------------------------------
    def closure(self, seq):
        return self._conn().execute("SELECT * FROM closures WHERE seq=?", (seq,)).fetchone()

    def of_kind(self, kind, after_seq=0):
        """Closures of ``kind`` after ``after_seq``, oldest first."""
        return self._conn().execute("SELECT * FROM closures WHERE kind=? AND seq>? ORDER BY seq",
                                    (kind, after_seq)).fetchall()

    def newest(self, kind):
        return self._conn().execute("SELECT * FROM closures WHERE kind=? ORDER BY seq DESC LIMIT 1",
                                    (kind,)).fetchone()

    def covering(self, seq):
        """The Z closure whose range holds record ``seq``, or None while it is in the open period."""
        return self._conn().execute("SELECT * FROM closures WHERE kind='Z' AND first_seq<=? AND last_seq>=? "
                                    "ORDER BY seq LIMIT 1", (seq, seq)).fetchone()

    def days_without_z(self, first_day, today):
        """Days from ``first_day`` to before ``today`` (YYYY-MM-DD) with invoices but no Z of their
        own period: what the daemon warns about."""
        have = set(r[0] for r in self._conn().execute("SELECT period FROM closures WHERE kind='Z'"))
        days = [r[0] for r in self._conn().execute(
            "SELECT DISTINCT substr(timestamp, 1, 10) FROM invoices WHERE timestamp >= ?", (first_day,))]
        return sorted(d for d in days if d and d < today and d not in have)

    # -- reports --------------------------------------------------------------------------------
    def add_report(self, row, event=None, now=None):
        """Insert a report row (a dict of the ``reports`` columns) and, in the same transaction, its
        ``report.generated`` event; False when its id or idempotency key is already there."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cols = sorted(row)
            conn.execute("INSERT INTO reports (%s) VALUES (%s)" % (", ".join(cols), ", ".join("?" * len(cols))),
                         [row[c] for c in cols])
            if event is not None:
                outbox.enqueue(conn, event[0], event[1], now)
            conn.execute("COMMIT")
            return True
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")
            return False
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def report(self, report_id):
        return self._conn().execute("SELECT * FROM reports WHERE report_id=?", (report_id,)).fetchone()

    def set_key(self, report_id, key):
        """Bind an Idempotency-Key to a report the owner filed; False when the key is taken."""
        try:
            self._conn().execute("UPDATE reports SET idempotency_key=? WHERE report_id=? AND idempotency_key IS NULL",
                                 (key, report_id))
            return True
        except sqlite3.IntegrityError:
            return False

    def report_by_key(self, key):
        return self._conn().execute("SELECT * FROM reports WHERE idempotency_key=?", (key,)).fetchone()

    def report_of_closure(self, seq):
        return self._conn().execute("SELECT * FROM reports WHERE closure_seq=?", (seq,)).fetchone()

    def reports(self, kind=None, limit=100, before=None):
        """Newest first: up to ``limit`` reports (of ``kind``), created before ``before``."""
        sql, args = "SELECT * FROM reports WHERE 1=1", []
        if kind is not None:
            sql += " AND type=?"
            args.append(kind)
        if before is not None:
            sql += " AND created<?"
            args.append(before)
        return self._conn().execute(sql + " ORDER BY created DESC, report_id DESC LIMIT ?", args + [limit]).fetchall()

    # -- technical log --------------------------------------------------------------------------
    def technical(self, first, last, limit):
        """Technical log entries with ``first <= time <= last`` (epoch seconds), oldest first."""
        return self._conn().execute("SELECT * FROM technical WHERE time>=? AND time<=? ORDER BY seq LIMIT ?",
                                    (first, last, limit)).fetchall()
