"""The daemon's SQLite store: schema, migrations and queries (requests, invoices, the journal
mirror). It owns every table and every SQL statement; rooms above call its methods and never
write SQL themselves. It imports only ``hostd.errors`` and the standard library.
"""
