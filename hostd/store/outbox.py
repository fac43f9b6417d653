"""The webhook outbox (issue 12): subscriptions, events, deliveries and their attempts.

Why in SQLite, and why ``enqueue`` takes the caller's connection: an event must never be lost and
never be sent before what it announces is stored. So ``invoice.sealed`` is written by
``Store.record_sealed`` in the very transaction that files the invoice (a crash either keeps both
or neither), and each delivery row (one per event and subscription) is created in that same
transaction. A delivery's id is its Standard Webhooks ``webhook-id``: the same on every retry,
so a receiver dedupes by it after a daemon crash resent one.

Delivery states: ``pending`` (due at ``next_at``), ``delivered``, ``dead`` (``max_attempts``
failed), ``gone`` (the receiver answered 410: the subscription is switched off).
"""

import hashlib
import json
import uuid

ALIASES = {"invoice.fiscalized": "invoice.sealed"}   # seed 000 names the same event so


def names_for(event_type):
    """Every subscription name that receives ``event_type``."""
    return [event_type] + [alias for alias, real in ALIASES.items() if real == event_type]


def enqueue(conn, event_type, payload, now):
    """Insert one event and its deliveries on ``conn`` (inside the caller's transaction)."""
    event_id = "evt_" + uuid.uuid4().hex
    conn.execute("INSERT INTO events (id, type, payload, created) VALUES (?, ?, ?, ?)",
                 (event_id, event_type, json.dumps(payload, sort_keys=True), now))
    names = names_for(event_type)
    for hook in conn.execute("SELECT id, events FROM webhooks WHERE active=1").fetchall():
        wanted = json.loads(hook["events"])
        for name in names:
            if name in wanted:
                delivery = "msg_" + hashlib.sha256((event_id + hook["id"] + name).encode()).hexdigest()[:32]
                conn.execute("INSERT INTO deliveries (id, event_id, webhook_id, event_name, state, attempts, next_at) "
                             "VALUES (?, ?, ?, ?, 'pending', 0, ?)", (delivery, event_id, hook["id"], name, now))
    return event_id


class Outbox:
    """The dispatcher's and the API's view of the outbox tables (hostd/store/store.py connections)."""

    def __init__(self, store):
        self.store = store

    def _conn(self):
        return self.store.conn()

    def add_webhook(self, doc, now):
        hook_id = "wh_" + uuid.uuid4().hex[:16]
        self._conn().execute(
            "INSERT INTO webhooks (id, url, events, secret, active, signature_header, max_attempts, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (hook_id, doc["url"], json.dumps(doc["events"]), doc["secret"],
                                               1 if doc["active"] else 0, doc["signature_header"], doc["max_attempts"],
                                               now))
        return hook_id

    def webhooks(self):
        return self._conn().execute("SELECT * FROM webhooks ORDER BY created").fetchall()

    def webhook(self, hook_id):
        return self._conn().execute("SELECT * FROM webhooks WHERE id=?", (hook_id,)).fetchone()

    def delete_webhook(self, hook_id):
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE deliveries SET state='gone', last_error='subscription deleted' "
                         "WHERE webhook_id=? AND state='pending'", (hook_id,))
            gone = conn.execute("DELETE FROM webhooks WHERE id=?", (hook_id,)).rowcount
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return gone

    def emit(self, event_type, payload, now):
        """An event on its own (device events, sync results): its own transaction."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            event_id = enqueue(conn, event_type, payload, now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return event_id

    def due(self, now, limit=32):
        """Pending deliveries due by ``now``, with their event and subscription."""
        return self._conn().execute(
            "SELECT d.*, e.type, e.payload, w.url, w.secret, w.signature_header, w.max_attempts FROM deliveries d "
            "JOIN events e ON e.id = d.event_id JOIN webhooks w ON w.id = d.webhook_id "
            "WHERE d.state='pending' AND d.next_at <= ? AND w.active=1 ORDER BY d.next_at LIMIT ?",
            (now, limit)).fetchall()

    def next_due(self):
        row = self._conn().execute("SELECT MIN(next_at) FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id "
                                   "WHERE d.state='pending' AND w.active=1").fetchone()
        return row[0]

    def record_attempt(self, delivery, number, now, status, error, ms, state, next_at=None, disable=None):
        """One attempt's outcome; ``state`` is the delivery's new state; ``disable`` switches the
        subscription off (HTTP 410) with that reason, ending its pending deliveries too."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT OR REPLACE INTO attempts (delivery_id, n, at, status, error, ms) VALUES (?, ?, ?, ?, ?, ?)",
                         (delivery["id"], number, now, status, error, ms))
            conn.execute("UPDATE deliveries SET attempts=?, state=?, next_at=COALESCE(?, next_at), last_status=?, "
                         "last_error=?, delivered_at=? WHERE id=?",
                         (number, state, next_at, status, error, now if state == "delivered" else None, delivery["id"]))
            if disable is not None:
                conn.execute("UPDATE webhooks SET active=0, disabled_reason=? WHERE id=?", (disable, delivery["webhook_id"]))
                conn.execute("UPDATE deliveries SET state='gone', last_error=? WHERE webhook_id=? AND state='pending'",
                             (disable, delivery["webhook_id"]))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def health(self):
        """{delivery state: count} over every subscription."""
        return {row[0]: row[1] for row in self._conn().execute(
            "SELECT state, COUNT(*) FROM deliveries GROUP BY state").fetchall()}

    def deliveries(self, hook_id, limit=100):
        rows = self._conn().execute(
            "SELECT d.*, e.type FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.webhook_id=? "
            "ORDER BY e.created DESC LIMIT ?", (hook_id, limit)).fetchall()
        out = []
        for row in rows:
            attempts = self._conn().execute("SELECT n, at, status, error, ms FROM attempts WHERE delivery_id=? "
                                            "ORDER BY n", (row["id"],)).fetchall()
            out.append((row, attempts))
        return out
