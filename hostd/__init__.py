"""The host side: the daemon that owns a fiscal device and serves POS software, and its tools.

Rooms, bottom to top (a room imports only from rooms below it; tests/test_import_graph.py keeps
this true; docs/ARCHITECTURE.md draws the flow of one invoice through them):

``errors`` (the one error hierarchy) → ``store/`` (SQLite) → ``intake/`` (what comes in: strict
JSON, canonical invoices, payload mappings) → ``books/`` (what is done with sealed data) → ``link/`` (one port to one device) → ``boards/`` (real boards: deploy,
provisioning, the development authority, doctor) → ``owner/`` (the device owner thread and its
exactly-once state machine) → ``api/`` (the HTTP surface) → ``daemon/`` (running the service)
→ ``sdk/`` (the POS side of the API) → ``cli/`` (the ``fiscal`` command, the only layer that
prints).
"""
