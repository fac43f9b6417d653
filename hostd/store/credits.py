"""The credits table (store step 9, issue 11): what each filed credit note credits against its
original, per tax group.

Why a table: the device keeps only the 32-byte root of its credit tree (protocol/smt.py); the
host must keep the leaves to prove what an original has been credited so far (EVIDENCE), and the
API shows an original's credits and balance. Both are sums over credit notes; reading them back
from the records would decode the whole journal. So every credit note's ``[[code, base, tax]]``
is kept here, written in the very transaction that files the credit invoice (``add``, called by
hostd/store/store.py ``record_sealed``): a credit entry exists exactly when its invoice is filed.
``replace_all`` rebuilds the table from the records themselves (the mirror and the archive) when
the device says the host's tree is stale (hostd/owner/credits.py).

Rows are read back in insertion order (``rowid``), so the owner loads only the rows added since it
last looked.
"""

import json


def add(conn, counter, original, seq, groups):
    """One credit note (fiscal ``counter``, record ``seq``) crediting ``groups`` [[code, base, tax]]
    against the original's counter; a counter already kept is left as it is."""
    conn.execute("INSERT OR IGNORE INTO credits (counter, original, seq, groups) VALUES (?, ?, ?, ?)",
                 (counter, original, seq, json.dumps(groups)))


def since(conn, rowid):
    """[(rowid, original, groups)] of the credits added after ``rowid``, oldest first."""
    return [(r[0], r[1], json.loads(r[2])) for r in conn.execute(
        "SELECT rowid, original, groups FROM credits WHERE rowid > ? ORDER BY rowid", (rowid,)).fetchall()]


def of_original(conn, original):
    """The credit notes filed against the original with fiscal counter ``original``, oldest first,
    with what the API shows of each: [{counter, fiscal_number, invoice_type, sealed_at, total,
    groups}]."""
    rows = conn.execute(
        "SELECT c.counter, c.groups, i.fiscal_number, i.invoice_type, i.sealed_at, i.total FROM credits c "
        "LEFT JOIN invoices i ON i.counter = c.counter WHERE c.original = ? ORDER BY c.counter", (original,)).fetchall()
    return [{"counter": r[0], "groups": json.loads(r[1]), "fiscal_number": r[2], "invoice_type": r[3],
             "sealed_at": r[4], "total": r[5]} for r in rows]


def replace_all(conn, entries):
    """Replace the whole table with ``entries`` [(counter, original, seq, groups)], in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM credits")
        for counter, original, seq, groups in entries:
            add(conn, counter, original, seq, groups)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
