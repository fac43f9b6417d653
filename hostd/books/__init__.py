"""What is done with sealed data: the seed's response envelope, invoice views, the audit export
and its offline verification, key and certificate checks, webhook events and signatures, CSV and
accounting exports, credit notes made from an original and the refund split (later reports and
closures). Pure functions over bytes, records and rows: no
device, no socket, no SQL. It imports ``protocol``, ``hostd.errors`` and ``hostd.intake``.
"""
