"""What comes in: the POS's words made into the canonical invoice the device seals. The one strict
JSON reader, the seed's canonical JSON -> CBOR with exact money, and the mappings of the other
payload shapes the seeds show (KutaPay's example, e-commerce orders, ERP invoices) onto it, and
the host's faster canonical CBOR codec (held to protocol/cbor.py) that reads what comes back. Pure
functions over bytes and documents: no device, no socket, no SQL. It imports ``protocol`` and
``hostd.errors``.
"""
