"""What the authority keeps of every device it has accepted records from (docs/SYNC.md "Store").

Three tables: ``devices`` (the certified key and the head of the chain held), ``records`` (every
accepted record, by device and seq, with its hash) and ``invoices`` (one row per sealed invoice,
with its canonical content when the outlet had it). Why it is shaped like this:

- The SQL is plain and portable, all of it in this module: integer and text columns, BLOBs for
  bytes (BYTEA in PostgreSQL), ``ON CONFLICT DO NOTHING``, no SQLite-only functions. Moving the
  authority to PostgreSQL for thousands of outlets means a new ``connect`` and the ``?``
  placeholders turned into ``%s``; nothing else here depends on SQLite.
- The head moves by compare-and-set (``UPDATE devices ... WHERE head_seq = <the head checked>``) in
  the transaction that inserts the records, so two servers sharing one database can never both
  extend one chain from the same head: the loser's transaction rolls back and it answers a gap.
- A row is written once and never updated, except the device's head.
"""

import sqlite3
import threading

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, public_key BLOB NOT NULL, certificate BLOB NOT NULL,
    authority_id TEXT NOT NULL, head_seq BIGINT NOT NULL, head_hash BLOB NOT NULL,
    first_seen TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    device_id TEXT NOT NULL, seq BIGINT NOT NULL, type INTEGER NOT NULL, record BLOB NOT NULL,
    hash BLOB NOT NULL, received TEXT NOT NULL, PRIMARY KEY (device_id, seq));
CREATE TABLE IF NOT EXISTS invoices (
    fiscal_number TEXT PRIMARY KEY, device_id TEXT NOT NULL, seq BIGINT NOT NULL, counter BIGINT NOT NULL,
    invoice_hash BLOB NOT NULL, canonical BLOB, invoice_type INTEGER NOT NULL, total BIGINT NOT NULL,
    currency TEXT NOT NULL, sealed_time BIGINT NOT NULL, acknowledged_at TEXT NOT NULL);
"""


class HeadMoved(Exception):
    """Another writer extended this device's chain first (the compare-and-set failed)."""


class Ledger:
    def __init__(self, path):
        self.path = path
        self._local = threading.local()
        self.conn().executescript(SCHEMA)

    def conn(self):
        """This thread's connection (uploads are checked in worker threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")   # an acknowledgement promises the record is kept
            self._local.conn = conn
        return conn

    def device(self, device_id):
        return self.conn().execute("SELECT * FROM devices WHERE device_id=?", (device_id,)).fetchone()

    def records(self, device_id, first=1):
        """(seq, record) of a device from ``first`` on, in order (what a walker is rebuilt from)."""
        return self.conn().execute("SELECT seq, record FROM records WHERE device_id=? AND seq>=? ORDER BY seq",
                                   (device_id, first))

    def held(self, device_id, first, last):
        """{seq: record bytes} the authority already holds in [first, last]."""
        rows = self.conn().execute("SELECT seq, record FROM records WHERE device_id=? AND seq BETWEEN ? AND ?",
                                   (device_id, first, last))
        return {row[0]: bytes(row[1]) for row in rows}

    def accept(self, device_id, device_row, expected_head, records, invoices, now):
        """Insert ``records`` [(seq, type, record, hash)] and ``invoices`` (dicts of the invoices
        columns) and move the head from ``expected_head`` to the last record, in one transaction.
        ``device_row`` (dict) creates the device when it is new. HeadMoved when another writer won."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if device_row is not None:
                conn.execute("INSERT INTO devices (device_id, public_key, certificate, authority_id, head_seq, "
                             "head_hash, first_seen, updated) VALUES (:device_id, :public_key, :certificate, "
                             ":authority_id, 0, :head_hash, :now, :now) ON CONFLICT DO NOTHING",
                             dict(device_row, now=now))
            last_seq, _, _, last_hash = records[-1]
            moved = conn.execute("UPDATE devices SET head_seq=?, head_hash=?, updated=? WHERE device_id=? AND "
                                 "head_seq=?", (last_seq, last_hash, now, device_id, expected_head)).rowcount
            if moved != 1:
                raise HeadMoved(device_id)
            conn.executemany("INSERT INTO records (device_id, seq, type, record, hash, received) VALUES (?, ?, ?, ?, ?, ?)",
                             [(device_id, seq, rtype, rec, digest, now) for seq, rtype, rec, digest in records])
            conn.executemany("INSERT INTO invoices (fiscal_number, device_id, seq, counter, invoice_hash, canonical, "
                             "invoice_type, total, currency, sealed_time, acknowledged_at) VALUES (:fiscal_number, "
                             ":device_id, :seq, :counter, :invoice_hash, :canonical, :invoice_type, :total, :currency, "
                             ":sealed_time, :acknowledged_at)", invoices)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def hashes(self, device_id, first, last):
        """{seq: hash} of held records in [first, last] (the acknowledgement of a re-sent record)."""
        rows = self.conn().execute("SELECT seq, hash FROM records WHERE device_id=? AND seq BETWEEN ? AND ?",
                                   (device_id, first, last))
        return {row[0]: bytes(row[1]) for row in rows}

    def invoice(self, fiscal_number):
        return self.conn().execute("SELECT * FROM invoices WHERE fiscal_number=?", (fiscal_number,)).fetchone()

    def counts(self):
        """(devices, records, invoices) held: the health answer."""
        c = self.conn()
        return tuple(c.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0] for t in ("devices", "records", "invoices"))
