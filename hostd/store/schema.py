"""The store's tables, their migrations, and how every connection is opened (hostd/store/store.py
says why each table exists).

Migrations are numbered and recorded in SQLite's ``PRAGMA user_version``: a store written by an
older daemon is brought forward step by step at open, each step in one transaction, so a store is
never left half-migrated and a newer daemon never needs the old one's data re-entered. Steps are
only ever appended; a published step is never edited.
"""

import sqlite3

# Step 1 is the store of the first daemon (issue 3); the rest follow in order.
MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS requests (
        key TEXT PRIMARY KEY, body_hash BLOB NOT NULL, canonical BLOB NOT NULL, invoice_json TEXT NOT NULL,
        state TEXT NOT NULL, nonce BLOB, status INTEGER, response BLOB, created REAL NOT NULL);
    CREATE INDEX IF NOT EXISTS requests_nonce ON requests(nonce);
    CREATE TABLE IF NOT EXISTS invoices (
        counter INTEGER PRIMARY KEY, fiscal_number TEXT UNIQUE NOT NULL, seq INTEGER NOT NULL,
        invoice_hash BLOB NOT NULL, canonical BLOB, invoice_json TEXT, sealed_json TEXT NOT NULL,
        merchant_nif TEXT, outlet_id TEXT, client_nif TEXT, invoice_type TEXT, timestamp TEXT,
        sealed_at TEXT NOT NULL, total INTEGER NOT NULL, currency TEXT NOT NULL,
        dgi_status TEXT NOT NULL DEFAULT 'queued');
    CREATE INDEX IF NOT EXISTS invoices_hash ON invoices(invoice_hash);
    CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, record BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
    """,
    # Step 2 (issue 8): the columns an invoice is filed under, taken from the body once when the
    # request is accepted (filing never parses the POS's JSON again); the terminal and PREPARE time
    # for the per-terminal share of the device's pending slots; and quarantined records.
    """
    ALTER TABLE requests ADD COLUMN merchant_nif TEXT;
    ALTER TABLE requests ADD COLUMN outlet_id TEXT;
    ALTER TABLE requests ADD COLUMN terminal TEXT;
    ALTER TABLE requests ADD COLUMN client_nif TEXT;
    ALTER TABLE requests ADD COLUMN invoice_type TEXT;
    ALTER TABLE requests ADD COLUMN timestamp TEXT;
    ALTER TABLE requests ADD COLUMN prepared_at REAL;
    CREATE INDEX requests_open ON requests(state, terminal);
    CREATE TABLE quarantine (
        seq INTEGER PRIMARY KEY, fiscal_number TEXT, reason TEXT NOT NULL, at REAL NOT NULL,
        sealed_json TEXT);
    """,
    # Step 3 (issue 12): the reference another system files an invoice under (an ERP connector
    # reference, an order id), kept with the request and the invoice so it can reconcile.
    """
    ALTER TABLE requests ADD COLUMN reference TEXT;
    ALTER TABLE invoices ADD COLUMN reference TEXT;
    """,
    # Step 4 (issue 12): the webhook outbox (hostd/store/outbox.py).
    """
    CREATE TABLE webhooks (
        id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL,
        active INTEGER NOT NULL, signature_header TEXT, max_attempts INTEGER NOT NULL, created REAL NOT NULL,
        disabled_reason TEXT);
    CREATE TABLE events (id TEXT PRIMARY KEY, type TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL);
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY, event_id TEXT NOT NULL REFERENCES events(id), webhook_id TEXT NOT NULL,
        event_name TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, next_at REAL NOT NULL,
        last_status INTEGER, last_error TEXT, delivered_at REAL);
    CREATE INDEX deliveries_due ON deliveries(state, next_at);
    CREATE TABLE attempts (
        delivery_id TEXT NOT NULL, n INTEGER NOT NULL, at REAL NOT NULL, status INTEGER, error TEXT, ms REAL,
        PRIMARY KEY (delivery_id, n));
    """,
    # Step 5 (issue 10, protocol 2): the 16-byte request id the device signs into each invoice
    # record (protocol/record.py request_id_for), by which records are filed and requests recovered.
    """
    ALTER TABLE requests ADD COLUMN request_id BLOB;
    CREATE INDEX requests_request_id ON requests(request_id);
    """,
    # Step 6 (issue 10): each mirrored record's hash. Protocol 2 signs the previous hash instead of
    # storing it, so a sealed result (its ledger hash, its QR) needs the record before it: kept
    # here as records are mirrored, instead of walking the whole chain at every reconnect.
    """
    ALTER TABLE journal ADD COLUMN hash BLOB;
    """,
    # Step 7 (issue 10): the archive of journal segments written before the device erases them
    # (hostd/store/archive.py).
    """
    CREATE TABLE archives (
        first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, file TEXT NOT NULL, sha256 TEXT NOT NULL,
        last_hash BLOB NOT NULL, created REAL NOT NULL, acknowledged INTEGER NOT NULL);
    """,
    # Step 8 (issue 12): the sync to the authority (hostd/store/sync.py): when the authority
    # acknowledged each invoice, the one-row cursor of what it holds, and invoices found by seq.
    """
    ALTER TABLE invoices ADD COLUMN acknowledged_at TEXT;
    CREATE INDEX invoices_seq ON invoices(seq);
    CREATE TABLE sync (
        id INTEGER PRIMARY KEY CHECK (id = 1), device_id TEXT, acked_seq INTEGER NOT NULL, acked_hash BLOB,
        failures INTEGER NOT NULL, failed_seq INTEGER, last_error TEXT, last_attempt REAL, last_success REAL);
    INSERT INTO sync (id, acked_seq, failures) VALUES (1, 0, 0);
    """,
    # Step 9 (issue 11): what each filed credit note credits against its original, per tax group
    # (hostd/store/credits.py): the leaves of the device's credit tree, and an original's balance.
    """
    CREATE TABLE credits (
        counter INTEGER NOT NULL UNIQUE, original INTEGER NOT NULL, seq INTEGER NOT NULL, groups TEXT NOT NULL);
    CREATE INDEX credits_original ON credits(original);
    """,
    # Step 10 (issue 11): closures as the device signed them, the reports made of them (X, Z, M,
    # Y, A) with their bundles, and the technical log: every non-invoice record of the journal by
    # time (hostd/store/closures.py).
    """
    CREATE TABLE closures (
        seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, period TEXT NOT NULL, record BLOB NOT NULL,
        hash BLOB NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, time INTEGER NOT NULL);
    CREATE INDEX closures_kind ON closures(kind, period);
    CREATE TABLE reports (
        report_id TEXT PRIMARY KEY, type TEXT NOT NULL, period TEXT, outlet_id TEXT, created REAL NOT NULL,
        ledger_hash TEXT NOT NULL, closure_seq INTEGER, file TEXT, sha256 TEXT, idempotency_key TEXT UNIQUE,
        summary TEXT NOT NULL);
    CREATE INDEX reports_created ON reports(created);
    CREATE TABLE technical (
        seq INTEGER PRIMARY KEY, type TEXT NOT NULL, time INTEGER NOT NULL, name TEXT, detail TEXT);
    CREATE INDEX technical_time ON technical(time);
    """,
    # Step 11 (issue 15, "Scale"): GET /invoices?status=synced found no row by scanning every one
    # in counter order (182 ms at 100,000 invoices, linear); the index answers it at once.
    """
    CREATE INDEX invoices_status ON invoices(dgi_status, counter);
    """,
    # Step 12 (issue 8, "per token where tokens are scoped"): the label of the scoped token that
    # sent a request (never the token), for that token's share of the device's PREPARE slots.
    """
    ALTER TABLE requests ADD COLUMN caller TEXT;
    CREATE INDEX requests_caller ON requests(state, caller);
    """,
)


def connect(path):
    """A connection with the settings every user of the store needs."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")   # an acknowledged seal must survive power loss
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn):
    """Apply every migration step the store has not had yet; return the resulting version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number in range(version + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[number - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("PRAGMA user_version=%d" % number)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return max(version, len(MIGRATIONS))
