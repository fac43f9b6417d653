"""The HTTP surface of the POS API (aiohttp): the application factory, authorisation, the error
middleware, and one module per resource. Handlers validate, then hand device work to the owner
and await it. It imports ``hostd.owner``, ``hostd.store``, ``hostd.books`` and ``hostd.errors``.
"""
