"""Owning one device: the owner thread that alone talks to the port, its exactly-once
PREPARE -> COMMIT state machine over the store's request rows, and reconciliation of the store
with the device journal. It imports ``hostd.link``, ``hostd.store``, ``hostd.books``,
``hostd.errors``, ``protocol`` and ``device.identity`` (fault names); never the API above it.
"""
