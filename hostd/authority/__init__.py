"""The authority's side of the sync (issue 12, docs/SYNC.md): what a tax authority or a head
office runs to receive every outlet's sealed records, check them as ``fiscal verify`` would, and
keep them (``fiscal authority serve``). It owns the authority's own store, never the daemon's.

May import: errors, intake (strict JSON), books (the upload format, keys), and protocol. Nothing
of the daemon: an authority runs where no device is.
"""
