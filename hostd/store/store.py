"""The daemon's SQLite store (WAL): full invoices, idempotency keys, and a mirror of the journal.

Why each table exists:

- ``requests``: one row per POS request (its Idempotency-Key, or a generated one). The row moves
  ``new -> prepared(nonce) -> done(response bytes)`` and every move is committed *before* the next
  device step, so after a crash the daemon knows exactly which request to ask STATUS about, and a
  retry gets the stored response bytes, byte for byte. ``request_id`` is the id the device signs
  into the invoice record (protocol 2), which is how journal records find their row.
- ``invoices``: the full canonical invoice (the device keeps only its hash) and the sealed result,
  bound to the device record by ``invoice_hash``; what GET and list read.
- ``journal``: every device record, in order, as read back with READ_JOURNAL; reconciliation
  fills it on start so the store never disagrees with the device, and the audit export reads it.

Every thread uses its own connection (``conn()``): the device owner thread writes invoices, the
journal mirror and request progress; HTTP handlers insert new request rows and read. A connection
is never shared across threads, so one thread's transaction can never swallow another's write;
WAL plus the busy timeout serialise the writers.
"""

import json
import sqlite3
import threading

from hostd.store.queries import list_query
from hostd.store.schema import REQUEST_ID_INDEX, SCHEMA, connect

class Store:
    def __init__(self, path):
        self.path = path
        self._local = threading.local()
        self.conn().executescript(SCHEMA)
        columns = [row[1] for row in self.conn().execute("PRAGMA table_info(requests)")]
        if "request_id" not in columns:
            self.conn().execute("ALTER TABLE requests ADD COLUMN request_id BLOB")
        self.conn().execute(REQUEST_ID_INDEX)

    def conn(self):
        """This thread's connection (the event loop and the device owner each have one)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
        return conn

    @property
    def db(self):
        return self.conn()

    # -- requests --------------------------------------------------------------------------------
    def request(self, key):
        return self.conn().execute("SELECT * FROM requests WHERE key=?", (key,)).fetchone()

    def add_request(self, key, body_hash, canonical, invoice_json, now):
        """Insert a new request row; returns False when the key already exists."""
        try:
            self.db.execute("INSERT INTO requests (key, body_hash, canonical, invoice_json, state, created) "
                            "VALUES (?, ?, ?, ?, 'new', ?)", (key, body_hash, canonical, invoice_json, now))
            return True
        except sqlite3.IntegrityError:
            return False

    def set_prepared(self, key, nonce):
        self.db.execute("UPDATE requests SET state='prepared', nonce=? WHERE key=?", (nonce, key))

    def reset_request(self, key):
        """The device lost the nonce without sealing: the next step PREPAREs again."""
        self.db.execute("UPDATE requests SET state='new', nonce=NULL WHERE key=?", (key,))

    def set_failed(self, key, status, response):
        """A final refusal (the device refused the invoice): the retry gets the same answer."""
        self.db.execute("UPDATE requests SET state='done', status=?, response=? WHERE key=?", (status, response, key))

    def request_by_nonce(self, nonce):
        return self.db.execute("SELECT * FROM requests WHERE nonce=?", (nonce,)).fetchone()

    def set_request_id(self, key, request_id):
        """The device request id of ``key``, stored before the first device call that carries it."""
        self.db.execute("UPDATE requests SET request_id=? WHERE key=?", (request_id, key))

    def request_by_request_id(self, request_id):
        return self.db.execute("SELECT * FROM requests WHERE request_id=?", (request_id,)).fetchone()

    def max_sealed_seq(self):
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM invoices").fetchone()[0]

    def sealed_ledger(self, counter):
        """The ledger hash (hex) filed under fiscal ``counter``, or None."""
        row = self.db.execute("SELECT sealed_json FROM invoices WHERE counter=?", (counter,)).fetchone()
        return json.loads(row[0])["payload"]["ledger_hash"] if row else None

    def journal_from(self, seq):
        """(seq, record) of the mirrored journal from ``seq`` on."""
        return self.db.execute("SELECT seq, record FROM journal WHERE seq >= ? ORDER BY seq", (seq,)).fetchall()

    # -- invoices and journal ------------------------------------------------------------------
    def record_sealed(self, row, key, response, status=200):
        """Store one sealed invoice and, in the same transaction, the request's final response."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "INSERT OR IGNORE INTO invoices (counter, fiscal_number, seq, invoice_hash, canonical, invoice_json, "
                "sealed_json, merchant_nif, outlet_id, client_nif, invoice_type, timestamp, sealed_at, total, currency) "
                "VALUES (:counter, :fiscal_number, :seq, :invoice_hash, :canonical, :invoice_json, :sealed_json, "
                ":merchant_nif, :outlet_id, :client_nif, :invoice_type, :timestamp, :sealed_at, :total, :currency)", row)
            if key is not None:
                self.db.execute("UPDATE requests SET state='done', status=?, response=? WHERE key=?",
                                (status, response, key))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def list_invoices(self, params):
        """(rows, page, per_page) of GET /api/v1/invoices for these query parameters."""
        sql, args, page, per_page = list_query(params)
        return self.conn().execute(sql, args).fetchall(), page, per_page

    def invoice(self, fiscal_number):
        return self.conn().execute("SELECT * FROM invoices WHERE fiscal_number=? OR CAST(counter AS TEXT)=?",
                                     (fiscal_number, fiscal_number)).fetchone()

    def journal_seq(self):
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]

    def add_journal(self, first_seq, records):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for i, rec in enumerate(records):
                self.db.execute("INSERT OR IGNORE INTO journal (seq, record) VALUES (?, ?)", (first_seq + i, rec))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def journal(self):
        return [row[0] for row in self.conn().execute("SELECT record FROM journal ORDER BY seq")]

    def meta(self, key, default=None):
        row = self.conn().execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key, value):
        self.db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (key, json.dumps(value)))
