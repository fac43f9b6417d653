"""Owning one device: the owner thread that alone talks to the port, its exactly-once
PREPARE -> COMMIT state machine over the store's request rows, credit notes (EVIDENCE then SEAL,
with the host's leaves of the device's credit tree), and reconciliation of the store with the
device journal. It imports ``hostd.link``, ``hostd.store``, ``hostd.books``, ``hostd.intake``,
``hostd.errors``, ``protocol``, ``device.identity`` (fault names) and ``device.credits`` (which
credit type credits which invoice type); never the API above it.
"""
