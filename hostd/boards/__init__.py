"""Real boards: the firmware manifest, ``fiscal board deploy`` over mpremote, provisioning, the
development certificate authority, and ``fiscal doctor``'s checks. It imports ``hostd.link``,
``hostd.books``, ``hostd.errors``, ``protocol`` and ``device`` (for the files it deploys).
"""
