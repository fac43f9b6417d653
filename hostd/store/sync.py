"""The daemon's record of the sync to the authority (issue 12; docs/SYNC.md "The daemon's side").

One row (table ``sync``) says how far the authority holds this device's chain: ``acked_seq`` and
the hash it acknowledged there. Everything after it in the journal mirror is pending. An invoice's
``dgi_status`` (seed 002) moves:

- ``queued``: sealed, not yet acknowledged (also while the authority is unreachable: an outage
  is not the invoice's fault, and it catches up when the authority is back);
- ``synced``, with ``acknowledged_at``: the authority acknowledged its record;
- ``failed``: the authority refused its record, or a record before it, ``max_retries`` times (a
  typed refusal, not a lost connection). Sync stops at the refused record, since the chain cannot
  continue past it, and every invoice from there on (also those sealed while it is stopped) is
  ``failed``; ``POST /api/v1/sync/retry`` makes them ``queued`` and starts again.

Each move of ``dgi_status`` and its event (``invoice.sync.success`` / ``invoice.sync.failed``) are
written in one transaction with the cursor, so an event is never lost or sent twice for one move.
The archive (hostd/owner/archiving.py) lets the device erase only up to ``acked_seq`` when sync is
on, so the host's archive is never the only copy of a sealed record.
"""

from hostd.store import outbox


class SyncLog:
    def __init__(self, store, archive=None):
        self.store = store
        self.archive = archive

    def _conn(self):
        return self.store.conn()

    def state(self):
        return self._conn().execute("SELECT * FROM sync WHERE id=1").fetchone()

    def acked_seq(self):
        return self.state()["acked_seq"]

    def pending(self, limit):
        """Up to ``limit`` consecutive records after the acknowledged one: [(seq, record, canonical)]."""
        after = self.acked_seq()
        filed = self.store.meta("filed_seq", 0)   # a mirrored record is uploaded once it is filed,
        rows = [(r[0], bytes(r[1]), None if r[2] is None else bytes(r[2])) for r in self._conn().execute(
            "SELECT j.seq, j.record, i.canonical FROM journal j LEFT JOIN invoices i ON i.seq = j.seq "
            "WHERE j.seq > ? AND j.seq <= ? ORDER BY j.seq LIMIT ?", (after, filed, limit))]   # with its content
        if rows and rows[0][0] != after + 1 and self.archive is not None:
            # a store rebuilt after archiving mirrors from the device's first live record: the
            # records before it are in the archive's segments (their invoices' content is lost)
            older = [(s, bytes(r), None) for s, r in self.archive.records_before(rows[0][0]) if s > after]
            rows = (older + rows)[:limit]
        out = []
        for row in rows:
            if row[0] != after + 1 + len(out):
                break
            out.append(row)
        return out

    def backlog(self):
        """(records pending, invoices queued, invoices failed)."""
        c = self._conn()
        head = c.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]
        queued = c.execute("SELECT COUNT(*) FROM invoices WHERE dgi_status='queued'").fetchone()[0]
        failed = c.execute("SELECT COUNT(*) FROM invoices WHERE dgi_status='failed'").fetchone()[0]
        return max(0, head - self.acked_seq()), queued, failed

    def acknowledge(self, device_id, acked, stamp, now, event_of):
        """Record the authority's acknowledgement of ``acked`` [(seq, hash)] (consecutive, after the
        cursor); each hash must be the mirror's. ``event_of(invoice row)`` -> (type, payload) of the
        ``invoice.sync.success`` event. Returns the number of invoices that became synced."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for seq, digest in acked:
                mine = conn.execute("SELECT hash FROM journal WHERE seq=?", (seq,)).fetchone()
                if mine is not None and bytes(mine[0]) != bytes(digest):
                    raise ValueError("the authority acknowledged record %d with another hash than the mirror's" % seq)
            first, last = acked[0][0], acked[-1][0]
            rows = conn.execute("SELECT * FROM invoices WHERE seq BETWEEN ? AND ? AND dgi_status != 'synced' "
                                "ORDER BY seq", (first, last)).fetchall()
            conn.execute("UPDATE invoices SET dgi_status='synced', acknowledged_at=? WHERE seq BETWEEN ? AND ? "
                         "AND dgi_status != 'synced'", (stamp, first, last))
            for row in rows:
                event_type, payload = event_of(row, stamp)
                outbox.enqueue(conn, event_type, payload, now)
            conn.execute("UPDATE sync SET device_id=?, acked_seq=MAX(acked_seq, ?), acked_hash=?, failures=0, "
                         "failed_seq=NULL, last_error=NULL, last_attempt=?, last_success=? WHERE id=1",
                         (device_id, last, bytes(acked[-1][1]), now, now))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(rows)

    def refused(self, seq, error, max_retries, now, event_of):
        """One more typed refusal of record ``seq``; after ``max_retries`` sync stops there and every
        invoice from ``seq`` on is ``failed`` (with its event). True when it just stopped."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            st = conn.execute("SELECT failures, failed_seq FROM sync WHERE id=1").fetchone()
            failures = st["failures"] + 1
            stopped = failures >= max_retries and st["failed_seq"] is None
            conn.execute("UPDATE sync SET failures=?, last_error=?, last_attempt=?, failed_seq=? WHERE id=1",
                         (failures, error, now, seq if failures >= max_retries else None))
            if stopped:
                self._fail_from(conn, seq, error, failures, now, event_of)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return stopped

    def fail_new(self, now, event_of):
        """While sync is stopped, invoices sealed since are ``failed`` too: none can reach the
        authority before the refused record does. Returns how many."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            st = conn.execute("SELECT * FROM sync WHERE id=1").fetchone()
            count = 0
            if st["failed_seq"] is not None:
                count = self._fail_from(conn, st["failed_seq"], st["last_error"], st["failures"], now, event_of)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return count

    def _fail_from(self, conn, seq, error, attempts, now, event_of):
        rows = conn.execute("SELECT * FROM invoices WHERE seq >= ? AND dgi_status='queued' ORDER BY seq",
                            (seq,)).fetchall()
        conn.execute("UPDATE invoices SET dgi_status='failed' WHERE seq >= ? AND dgi_status='queued'", (seq,))
        for row in rows:
            event_type, payload = event_of(row, error, attempts)
            outbox.enqueue(conn, event_type, payload, now)
        return len(rows)

    def unreachable(self, error, now):
        self._conn().execute("UPDATE sync SET last_error=?, last_attempt=? WHERE id=1", (error, now))

    def retry(self):
        """Start a stopped sync again: the failed invoices are ``queued`` until the next answer;
        returns the seq it had stopped at (or None)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            st = self.state()
            conn.execute("UPDATE invoices SET dgi_status='queued' WHERE dgi_status='failed'")
            conn.execute("UPDATE sync SET failures=0, failed_seq=NULL WHERE id=1")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return st["failed_seq"]

    def rewind(self, seq, digest):
        """The authority holds less than the cursor says (its store was restored from a backup):
        resend from ``seq + 1``; invoices after it are ``queued`` again, which is the truth."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE invoices SET dgi_status='queued', acknowledged_at=NULL WHERE seq > ?", (seq,))
            conn.execute("UPDATE sync SET acked_seq=?, acked_hash=? WHERE id=1", (seq, digest))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def mirror_hashes(self, first, last):
        """[(seq, hash)] the mirror holds in [first, last] (a fast-forward to the authority's head)."""
        return [(r[0], bytes(r[1])) for r in self._conn().execute(
            "SELECT seq, hash FROM journal WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last))]
