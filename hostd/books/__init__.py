"""What is done with sealed data: the POS's JSON made canonical, the seed's response envelope,
invoice views, the audit export and its offline verification, key and certificate checks (later
reports, closures, CSV and accounting exports). Pure functions over bytes, records and rows: no
device, no socket, no SQL. It imports ``protocol`` and ``hostd.errors``.
"""
