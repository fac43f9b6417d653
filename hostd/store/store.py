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
- ``quarantine``: journal records the reconciler could not file (issue 8). They stay in the
  journal mirror and the export; the request that asked for one still gets its sealed answer;
  ``/status`` and the log report them, and sealing goes on.

Every thread uses its own connection (``conn()``): the device owner thread writes invoices, the
journal mirror and request progress; HTTP handlers insert new request rows and read. A connection
is never shared across threads, so one thread's transaction can never swallow another's write;
WAL plus the busy timeout serialise the writers.
"""

import json
import sqlite3
import threading
import time

from protocol import record
from hostd.store import credits, outbox
from hostd.store.queries import list_query
from hostd.store.schema import connect, migrate

COLUMNS = ("merchant_nif", "outlet_id", "terminal", "client_nif", "invoice_type", "timestamp", "reference")


class Store:
    def __init__(self, path):
        self.path = path
        self._local = threading.local()
        migrate(self.conn())

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

    def add_request(self, key, body_hash, canonical, invoice_json, now, columns=None, request_id=None, caller=None):
        """Insert a new request row; returns False when the key already exists.

        ``columns`` (hostd.intake.canonical.Parsed.columns) are what the invoice will be filed
        under; taken once here so filing never parses the POS's JSON again. ``request_id`` is the
        id the device will sign into the record (protocol.record.request_id_for of the key);
        ``caller`` the label of the scoped token that sent it (hostd/api/auth.py ``caller_of``)."""
        columns = columns or {}
        try:
            self.db.execute("INSERT INTO requests (key, body_hash, canonical, invoice_json, state, created, request_id, "
                            "caller, %s) VALUES (?, ?, ?, ?, 'new', ?, ?, ?, %s)"
                            % (", ".join(COLUMNS), ", ".join("?" * len(COLUMNS))),
                            (key, body_hash, canonical, invoice_json, now, request_id, caller)
                            + tuple(columns.get(c) for c in COLUMNS))
            return True
        except sqlite3.IntegrityError:
            return False

    def add_pending(self, pending, durable=True):
        """Insert the request row of a ``pending`` request (hostd/api/accept.py); False when the
        key exists already.

        ``durable=False`` (the one-call path, issue 15) commits without syncing: the row then
        survives a daemon crash (it is in the WAL, which the kernel holds) but not a power cut
        until the next durable commit, which is the seal's own, a moment later. The sync of that
        commit covers this row too, since the WAL is one append-only file. A power cut in between
        loses the row, never a seal: the device dedupes request ids, the record is filed from the
        journal at the next start, and the POS's retry completes it with its content. (An invoice
        that left its timestamp out is dated again by that retry, so it is not the invoice sealed:
        the device refuses the request id, REQUEST_ID_REUSED naming the seal; README "If the store
        is lost".)"""
        conn = self.db
        if not durable:
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            return self._add_pending_row(pending)
        finally:
            if not durable:
                conn.execute("PRAGMA synchronous=FULL")

    def add_pendings(self, pendings):
        """Insert the request rows of a SEAL_BATCH's requests in one commit without a sync (as
        ``add_pending(durable=False)``: the batch's own durable commit covers them). Returns one
        bool per request: False when its key existed already (or came earlier in ``pendings``)."""
        conn = self.db
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = [self._add_pending_row(p) for p in pendings]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return out
        finally:
            conn.execute("PRAGMA synchronous=FULL")

    def _add_pending_row(self, pending):
        """add_request with what a ``pending`` dict (hostd/api/accept.py) holds."""
        return self.add_request(pending["key"], pending["body_hash"], pending["canonical"], pending["invoice_json"],
                                pending["created"], {c: pending[c] for c in COLUMNS}, pending["request_id"],
                                pending.get("caller"))

    def set_prepared(self, key, nonce, now=None):
        self.db.execute("UPDATE requests SET state='prepared', nonce=?, prepared_at=? WHERE key=?", (nonce, now, key))

    def open_prepares(self, prefix, since, terminal=None, caller=None):
        """(count, oldest time) of requests under key ``prefix`` (of ``terminal`` and/or of
        ``caller``, or of all) that hold a PREPARE made after ``since`` (older ones have expired
        on the device)."""
        sql = ("SELECT COUNT(*), MIN(prepared_at) FROM requests WHERE state='prepared' AND substr(key, 1, ?)=? "
               "AND prepared_at > ?")
        args = [len(prefix), prefix, since]
        if terminal is not None:
            sql += " AND terminal=?"
            args.append(terminal)
        if caller is not None:
            sql += " AND caller=?"
            args.append(caller)
        return tuple(self.db.execute(sql, args).fetchone())

    def reset_request(self, key):
        """The device lost the nonce without sealing: the next step PREPAREs again."""
        self.db.execute("UPDATE requests SET state='new', nonce=NULL WHERE key=?", (key,))

    def set_failed(self, key, status, response):
        """A final answer (a refusal, or a sealed answer that could not be filed): the retry gets
        the same bytes."""
        self.db.execute("UPDATE requests SET state='done', status=?, response=? WHERE key=?", (status, response, key))

    def waiting_requests(self, since):
        """(count, oldest created time) of requests accepted since ``since`` and not sealed yet."""
        return tuple(self.conn().execute("SELECT COUNT(*), MIN(created) FROM requests WHERE state='new' AND "
                                         "created >= ?", (since,)).fetchone())

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
        """(seq, record, hash) of the mirrored journal from ``seq`` on."""
        return self.db.execute("SELECT seq, record, hash FROM journal WHERE seq >= ? ORDER BY seq", (seq,)).fetchall()

    def journal_between(self, first, last):
        """(seq, record, hash) of the mirrored records ``first..last``."""
        return self.db.execute("SELECT seq, record, hash FROM journal WHERE seq >= ? AND seq <= ? ORDER BY seq",
                               (first, last)).fetchall()

    def first_seq_at(self, stamp):
        """The seq of the first mirrored record with a time at or after ``stamp`` (epoch seconds):
        record bodies are decoded here, so this serves the occasional dated export, not a hot path."""
        for seq, rec, _ in self.journal_from(1):
            if record.decode(rec)[0][record.K_TIME] >= stamp:
                return seq
        return self.journal_seq() + 1

    def journal_hash(self, seq):
        """The hash of mirrored record ``seq`` (None when it is not mirrored)."""
        row = self.db.execute("SELECT hash FROM journal WHERE seq=?", (seq,)).fetchone()
        return row[0] if row else None

    # -- invoices and journal ------------------------------------------------------------------
    def record_sealed(self, row, key, response, status=200, events=(), mirror=None):
        """Store one sealed invoice and, in the same transaction, the request's final response and
        the events announcing it (hostd/store/outbox.py): an event exists only if its invoice
        does, and only once, when the invoice is filed for the first time.

        ``mirror`` = (seq, record, hash, prev) of the sealed record itself: when it directly follows
        the mirrored journal (its prev is the last mirrored hash), it is mirrored and marked filed
        in the same transaction, so no later reconcile files it again (issue 15). A credit note's
        ``row["credit"]`` = (original counter, [[code, base, tax]]) goes into the credits table
        with it (hostd/store/credits.py)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if mirror is not None:
                seq, rec, digest, prev = mirror
                self._mirror_own(seq, [rec], [digest], prev)
            self._file_sealed(row, key, response, status, events)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def record_sealed_batch(self, filed, mirror=None, failed=(), quarantined=()):
        """A SEAL_BATCH in ONE durable transaction (issue 15): ``filed`` = [(row, key, response,
        events)] as for record_sealed, ``failed`` = [(key, status, response)] final refusals,
        ``quarantined`` = [(seq, fiscal number, reason, sealed json, key, response)] records that
        could not be filed (their request still gets its sealed answer), and ``mirror`` =
        (first seq, records, hashes, prev): every record the batch wrote, mirrored and marked filed
        when it directly follows the mirror."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if mirror is not None:
                self._mirror_own(*mirror)
            for row, key, response, events in filed:
                self._file_sealed(row, key, response, 200, events)
            for key, status, response in failed:
                self.set_failed(key, status, response)
            for seq, number, reason, sealed_json, key, response in quarantined:
                self.quarantine(seq, number, reason, sealed_json, time.time())
                if key is not None:
                    self.set_failed(key, 200, response)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _mirror_own(self, first, records, hashes, prev):
        """Inside a transaction: mirror records ``first``.. a live seal wrote, and mark them filed,
        when they directly follow the mirror (else the next reconcile mirrors and files them)."""
        last = self.db.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        if last is not None and last[0] == first - 1 and last[1] == prev:
            self.db.executemany("INSERT OR IGNORE INTO journal (seq, record, hash) VALUES (?, ?, ?)",
                                [(first + i, records[i], hashes[i]) for i in range(len(records))])
            if self.meta("filed_seq", 0) == first - 1:
                self.set_meta("filed_seq", first + len(records) - 1)

    def _file_sealed(self, row, key, response, status, events):
        """Inside a transaction: one sealed invoice, its events and its request's answer."""
        filed = self.db.execute(
            "INSERT OR IGNORE INTO invoices (counter, fiscal_number, seq, invoice_hash, canonical, invoice_json, "
            "sealed_json, merchant_nif, outlet_id, client_nif, invoice_type, timestamp, sealed_at, total, currency, "
            "reference) VALUES (:counter, :fiscal_number, :seq, :invoice_hash, :canonical, :invoice_json, "
            ":sealed_json, :merchant_nif, :outlet_id, :client_nif, :invoice_type, :timestamp, :sealed_at, :total, "
            ":currency, :reference)", dict({"reference": None}, **row)).rowcount
        if filed:
            if row.get("credit") is not None:   # a credit note: what it credits, in the same transaction
                credits.add(self.db, row["counter"], row["credit"][0], row["seq"], row["credit"][1])
            for event_type, payload in events:
                outbox.enqueue(self.db, event_type, payload, time.time())
        elif row.get("canonical") is not None:
            # filed earlier from the journal alone (a lost store): the retry brings the content
            self.db.execute(
                "UPDATE invoices SET canonical=:canonical, invoice_json=:invoice_json, merchant_nif=:merchant_nif, "
                "outlet_id=:outlet_id, client_nif=:client_nif, timestamp=:timestamp, reference=:reference "
                "WHERE counter=:counter AND canonical IS NULL AND invoice_hash=:invoice_hash",
                dict({"reference": None}, **row))
        if key is not None:
            self.db.execute("UPDATE requests SET state='done', status=?, response=? WHERE key=?",
                            (status, response, key))

    def list_invoices(self, params):
        """(rows, page, per_page) of GET /api/v1/invoices for these query parameters."""
        sql, args, page, per_page = list_query(params)
        return self.conn().execute(sql, args).fetchall(), page, per_page

    def invoices_between(self, first, last, currency=None):
        """Filed invoices whose own timestamp is in [first, last] (text), oldest first."""
        sql = "SELECT * FROM invoices WHERE timestamp >= ? AND timestamp <= ? AND canonical IS NOT NULL"
        args = [first, last]
        if currency is not None:
            sql += " AND currency = ?"
            args.append(currency)
        return self.conn().execute(sql + " ORDER BY counter", args).fetchall()

    def invoices_in_seqs(self, first, last):
        """Filed invoices whose records are ``first..last``, in journal order (a closure's period)."""
        return self.conn().execute("SELECT * FROM invoices WHERE seq >= ? AND seq <= ? ORDER BY seq",
                                   (first, last)).fetchall()

    def daily_totals(self, first_day):
        """[(day, net total in minor units)] from ``first_day`` on (credit notes count negative)."""
        return [(row[0], row[1]) for row in self.conn().execute(
            "SELECT substr(timestamp, 1, 10) AS day, SUM(CASE WHEN invoice_type IN ('credit_note', 'export_credit') "
            "THEN -total ELSE total END) FROM invoices WHERE timestamp >= ? GROUP BY day ORDER BY day",
            (first_day,)).fetchall()]

    def invoice(self, fiscal_number):
        """The filed invoice with this fiscal number, or this counter (digits): an index lookup
        either way (the unique fiscal_number index, or the counter primary key)."""
        if fiscal_number.isascii() and fiscal_number.isdigit() and len(fiscal_number) <= 18:
            return self.conn().execute("SELECT * FROM invoices WHERE counter=?", (int(fiscal_number),)).fetchone()
        return self.conn().execute("SELECT * FROM invoices WHERE fiscal_number=?", (fiscal_number,)).fetchone()

    def credits_since(self, rowid):
        return credits.since(self.db, rowid)

    def credits_of(self, original):
        return credits.of_original(self.conn(), original)

    def replace_credits(self, entries):
        credits.replace_all(self.db, entries)

    # -- quarantine --------------------------------------------------------------------------------
    def quarantine(self, seq, fiscal_number, reason, sealed_json, now):
        self.db.execute("INSERT OR REPLACE INTO quarantine (seq, fiscal_number, reason, at, sealed_json) "
                        "VALUES (?, ?, ?, ?, ?)", (seq, fiscal_number, reason, now, sealed_json))

    def quarantined(self, limit=20):
        """(count, newest ``limit`` rows) of quarantined records."""
        count = self.conn().execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
        rows = self.conn().execute("SELECT seq, fiscal_number, reason, at FROM quarantine ORDER BY seq DESC LIMIT ?",
                                   (limit,)).fetchall()
        return count, rows

    def quarantined_invoice(self, fiscal_number):
        return self.conn().execute("SELECT * FROM quarantine WHERE fiscal_number=?", (fiscal_number,)).fetchone()

    def journal_seq(self):
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]

    def add_journal(self, first_seq, records, hashes):
        """Mirror ``records`` from ``first_seq`` on, with each one's record hash."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for i, rec in enumerate(records):
                self.db.execute("INSERT OR IGNORE INTO journal (seq, record, hash) VALUES (?, ?, ?)",
                                (first_seq + i, rec, hashes[i]))
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
