"""The store's tables, and how every connection is opened (hostd/store/store.py says why each
table exists)."""

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY, body_hash BLOB NOT NULL, canonical BLOB NOT NULL, invoice_json TEXT NOT NULL,
    state TEXT NOT NULL, nonce BLOB, status INTEGER, response BLOB, created REAL NOT NULL, request_id BLOB);
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
"""

# Protocol 2: the 16-byte request id the device signs into each invoice record (a column added to
# stores made before it; the index is made once the column exists).
REQUEST_ID_INDEX = "CREATE INDEX IF NOT EXISTS requests_request_id ON requests(request_id)"


def connect(path):
    """A connection with the settings every user of the store needs."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")   # an acknowledged seal must survive power loss
    conn.execute("PRAGMA foreign_keys=ON")
    return conn
